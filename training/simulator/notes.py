"""Progress-note text for the simulator's ``ehr`` dialect: what a clinician writes at a visit.

Each sentence comes from a template with the items it states (the labels of
``tests/fhir_mapping/notes/README.md``), so generated notes double as a labelled set for the note
extractor. Templates vary the wording, negations, abbreviations ("sz", "appt", "f/u") and common
misspellings ("seziure", "siezures"); a note may leave any item out (then it is not recorded, not
denied). English and Chinese.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

Labels = dict[str, Any]
Sentence = tuple[str, Labels]

EN_NUMBERS: Final = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
ZH_NUMBERS: Final = ("零", "一", "两", "三", "四", "五", "六", "七", "八", "九", "十")
# Durations written for each class of fhir_mapping.codes.DURATION_CLASSES (1: < 1 min, 2: 1–5, 3: > 5).
EN_DURATIONS: Final = {
    1: ("about 30 seconds", "<1 min", "under a minute", "20 secs", "less than a minute", "approx 40 seconds"),
    2: ("about 2 minutes", "2-3 min", "3 mins", "around 90 seconds", "about a minute"),
    3: ("over 5 minutes", "about 10 min", "more than 5 minutes", "roughly 7 minutes"),
}
ZH_DURATIONS: Final = {
    1: ("约30秒", "数十秒", "约10余秒", "约半分钟", "约20秒"),
    2: ("约1分钟左右", "约2分钟", "约3分钟", "约4分钟"),
    3: ("约5分钟以上", "约10分钟", "约8分钟"),
}
EN_NONE: Final = (
    "No seizures since the last visit.", "No sz since last appt.", "Parents deny any seizures.",
    "Seizure free since last review.", "Has not had any seizures.", "Seizures: none.",
    "No further seizures reported.", "No seziures since last visit.", "No fits since last f/u.",
    "Denies seizure activity.", "Mum reports no seizures.",
)
EN_SOME: Final = (
    "{N} seizure{s} since the last visit, lasting {dur}.", "Had {n} seizure{s} since last seen, longest {dur}.",
    "Sz x{d} since last appt, lasting {dur}.", "Mother reports {n} nocturnal seizure{s}, each {dur}.",
    "{n} siezure{s} since last visit, {dur}.", "Interval hx: {n} sz ({dur}).",
    "{N} episode{s} of facial twitching and drooling from sleep, lasting {dur}.",
)
EN_SOME_NO_DURATION: Final = ("{N} seizure{s} since the last visit.", "Reports {n} sz since last f/u.", "Seizures x{d} since last appointment.")
ZH_NONE: Final = ("无发作。", "上次复诊以来无发作。", "未再发作。", "否认抽搐发作。", "随访期间未见发作。", "近期无抽搐。", "家长诉无发作。")
ZH_SOME: Final = (
    "上次就诊以来发作{n}次，持续{dur}。", "发作{n}次，均在夜间睡眠中，最长持续{dur}。", "随访期间抽搐{n}次，每次{dur}。",
    "夜间发作{n}次，表现为口角抽动、流涎，持续{dur}缓解。", "本次复诊前发作{n}次，持续{dur}。",
)
ZH_SOME_NO_DURATION: Final = ("发作{n}次。", "上次复诊后抽搐{n}次。")
EN_ADVERSE: Final = {
    "somnolence": ("Drowsy in the mornings since starting LEV.", "Very sleepy during the day.", "Mum reports somnolence."),
    "irritability": ("More irritable at home.", "Parents note moodiness and temper tantrums.", "Irritability reported by dad."),
    "aggression": ("Aggressive behaviour at school reported.", "Teacher reports aggression towards peers.", "Has been hitting his sibling."),
}
ZH_ADVERSE: Final = {
    "somnolence": ("白天嗜睡。", "服药后困倦明显。"),
    "irritability": ("情绪烦躁，易激惹。", "服药后脾气暴躁。"),
    "aggression": ("有攻击行为。", "在校打同学。"),
}
NO_ADVERSE: Final = {"somnolence": False, "irritability": False, "aggression": False, "behaviour_adverse_effect": False}
EN_NO_ADVERSE: Final = (("No side effects.", NO_ADVERSE), ("Tolerating LEV well without side effects.", NO_ADVERSE),
                        ("No drowsiness or irritability.", {"somnolence": False, "irritability": False}))
ZH_NO_ADVERSE: Final = (("未见明显不良反应。", NO_ADVERSE), ("无嗜睡、易激惹等不良反应。", {"somnolence": False, "irritability": False}),
                        ("无药物副作用。", NO_ADVERSE))
# Misspellings a busy clinician makes, of words that carry no item (the items' own terms have their
# curated misspellings in the templates above), applied now and then to English sentences.
EN_TYPOS: Final = {
    "nocturnal": "nocternal", "appointment": "appointmnet", "reported": "reproted", "review": "reveiw",
    "mother": "mohter", "lasting": "lastign", "since": "snice", "visit": "vist", "parents": "parnets",
    "school": "shcool", "mornings": "mornigns", "during": "durign", "behaviour": "behavior", "exam": "examn",
}
TYPO_RATE: Final = 0.15
EN_FILLER: Final = ("Neuro exam normal.", "Growth on track.", "Plan: continue current dose, review in 3 months.",
                    "Discussed seizure first aid with the family.", "School performance good.", "EEG requested.")
ZH_FILLER: Final = ("神经系统查体未见异常。", "继续口服左乙拉西坦，3个月后复诊。", "已告知家属发作时处理方法。", "学习成绩稳定。", "复查脑电图。")


@dataclass(frozen=True)
class VisitFacts:
    """What is true at a visit, as far as a note can say it."""

    seizure_count: int
    duration_class: int  # 0 when no seizure
    last_3_months: bool
    last_6_months: bool
    adverse_effect: bool
    months_seizure_free: int | None  # whole months since the last seizure, when at least one


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _seizure_sentence(facts: VisitFacts, language: str, rng: np.random.Generator) -> Sentence:
    count = facts.seizure_count
    if count == 0:
        return _pick(rng, EN_NONE if language == "en" else ZH_NONE), {"seizure_since_last_visit": False, "seizure_count_since_last_visit": 0, "seizure_duration_class": 0}
    labels: Labels = {"seizure_since_last_visit": True, "seizure_count_since_last_visit": count}
    with_duration = facts.duration_class > 0 and rng.random() < 0.8
    if language == "en":
        word = EN_NUMBERS[count] if count < len(EN_NUMBERS) and rng.random() < 0.5 else str(count)
        template = _pick(rng, EN_SOME if with_duration else EN_SOME_NO_DURATION)
        text = template.format(N=word.capitalize(), n=word, d=count, s="" if count == 1 else "s", dur=_pick(rng, EN_DURATIONS[facts.duration_class]) if with_duration else "")
    else:
        word = ZH_NUMBERS[count] if count < len(ZH_NUMBERS) and rng.random() < 0.4 else str(count)
        template = _pick(rng, ZH_SOME if with_duration else ZH_SOME_NO_DURATION)
        text = template.format(n=word, dur=_pick(rng, ZH_DURATIONS[facts.duration_class]) if with_duration else "")
    if with_duration:
        labels["seizure_duration_class"] = facts.duration_class
    return text, labels


def _window_sentence(facts: VisitFacts, language: str, rng: np.random.Generator) -> Sentence | None:
    free = facts.months_seizure_free
    if free is not None and free >= 1 and facts.seizure_count == 0:
        labels: Labels = {"seizure_free_months": free}
        if free >= 3:
            labels["seizure_last_3_months"] = False
        if free >= 6:
            labels["seizure_last_6_months"] = False
        if language == "en":
            text = _pick(rng, ("Seizure-free for {m} months.", "{m} months seizure free.", "Sz-free x {m} months.")).format(m=free)
        else:
            text = _pick(rng, ("已{m}个月无发作。", "近{m}个月未再发作。")).format(m=free)
        return text, labels
    if facts.last_3_months and rng.random() < 0.5:
        return ("Has had seizures in the past 3 months." if language == "en" else "近3个月有发作。"), {"seizure_last_3_months": True, "seizure_last_6_months": True}
    if not facts.last_6_months and rng.random() < 0.5:
        return ("No seizures in the last 6 months." if language == "en" else "近半年无发作。"), {"seizure_free_months": 6, "seizure_last_3_months": False, "seizure_last_6_months": False}
    return None


def _adverse_sentence(facts: VisitFacts, language: str, rng: np.random.Generator) -> Sentence | None:
    if facts.adverse_effect:
        kind = _pick(rng, ("somnolence", "irritability", "aggression"))
        return _pick(rng, (EN_ADVERSE if language == "en" else ZH_ADVERSE)[kind]), {kind: True, "behaviour_adverse_effect": True}
    if rng.random() < 0.6:
        text, labels = _pick(rng, EN_NO_ADVERSE if language == "en" else ZH_NO_ADVERSE)
        return text, dict(labels)
    return None


def visit_sentences(facts: VisitFacts, language: str, rng: np.random.Generator) -> list[Sentence]:
    """The sentences of one progress note with their labels (a sentence may state nothing)."""
    out: list[Sentence] = []
    filler = EN_FILLER if language == "en" else ZH_FILLER
    if rng.random() < 0.3:
        out.append((_pick(rng, filler), {}))
    if rng.random() < 0.92:  # a note sometimes says nothing about seizures: not recorded
        out.append(_seizure_sentence(facts, language, rng))
    window = _window_sentence(facts, language, rng)
    if window is not None:
        out.append(window)
    adverse = _adverse_sentence(facts, language, rng)
    if adverse is not None:
        out.append(adverse)
    if rng.random() < 0.5:
        out.append((_pick(rng, filler), {}))
    if language == "en":
        out = [(_misspell(text, rng), labels) for text, labels in out]
    return out


def _misspell(text: str, rng: np.random.Generator) -> str:
    words = text.split(" ")
    for index, word in enumerate(words):
        bare = word.rstrip(".,;:)").lower()
        if bare in EN_TYPOS and rng.random() < TYPO_RATE:
            wrong = EN_TYPOS[bare]
            words[index] = (wrong.capitalize() if word[0].isupper() else wrong) + word[len(bare):]
    return " ".join(words)


# How a note records a family's request for treatment (domain.md §6: treat at the family's request).
EN_FAMILY_REQUEST: Final = ("Parents are keen to start medication.", "Mum would like to start treatment.",
                            "Family request treatment after this seizure.", "Parents would like him to start levetiracetam.")
ZH_FAMILY_REQUEST: Final = ("家长要求开始药物治疗。", "父母希望用药。", "家长主动要求服药。", "患儿母亲要求开始治疗。")


def family_request_sentence(language: str, pick: int) -> Sentence:
    """The sentence recording a family's request, chosen by ``pick`` (so the note's random stream is not used)."""
    options = EN_FAMILY_REQUEST if language == "en" else ZH_FAMILY_REQUEST
    return options[pick % len(options)], {"family_requests_treatment": True}


def note_text(sentences: Sequence[Sentence], language: str) -> str:
    """The note as written: English sentences separated by spaces, Chinese run together."""
    return ("" if language == "zh" else " ").join(text for text, _ in sentences)


def template_set(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` labelled template sentences over varied visit facts (for measuring the note extractor)."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    while len(rows) < n:
        count = int(rng.choice([0, 0, 0, 1, 1, 2, 3, 4, 6, 12]))
        facts = VisitFacts(
            seizure_count=count,
            duration_class=int(rng.integers(1, 4)) if count else 0,
            last_3_months=bool(count) or bool(rng.random() < 0.2),
            last_6_months=bool(count) or bool(rng.random() < 0.4),
            adverse_effect=bool(rng.random() < 0.3),
            months_seizure_free=None if count else int(rng.integers(1, 30)),
        )
        if not facts.last_6_months and facts.months_seizure_free is not None and facts.months_seizure_free < 6:
            facts = VisitFacts(count, 0, facts.last_3_months, True, facts.adverse_effect, facts.months_seizure_free)
        language = "en" if rng.random() < 0.5 else "zh"
        for text, labels in visit_sentences(facts, language, rng):
            rows.append({"text": text, "language": language, "labels": labels})
    return rows[:n]
