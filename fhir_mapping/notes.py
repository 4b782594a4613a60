"""Seizure history and adverse effects read from clinical note text, in English and Chinese.

The published study built its state from keywords in free-text chief complaints (domain.md §1, §5);
real charts keep the seizure history mostly in notes. This is a rule-based extractor: the rules
(term lists, negation cues, time expressions, count and duration patterns) are data in
``fhir_mapping/data/note_rules.json``; this module only applies them. What the items mean, and how
sentences are labelled to measure the rules, is in ``tests/fhir_mapping/notes/README.md``.

Items read from a sentence (absent when the text does not state them):

- ``seizure_since_last_visit`` (bool), ``seizure_count_since_last_visit`` (int),
  ``seizure_duration_class`` (0–3, :data:`fhir_mapping.codes.DURATION_CLASSES`);
- ``seizure_last_3_months``, ``seizure_last_6_months`` (bool); ``seizure_free_months`` (a stated
  seizure-free period); ``seizure_months_ago`` (a seizure dated back from the note's day);
- ``somnolence``, ``irritability``, ``aggression`` (bool) and ``behaviour_adverse_effect``;
- ``family_requests_treatment`` (bool): the family asks for daily treatment (true) or prefers to wait (false).

A note is read sentence by sentence, then merged: a reported seizure outweighs a denial elsewhere in
the same note (a missed seizure is the costlier error), and other disagreements drop the item with a
problem. Nothing raises: text that cannot be read (another language, binary, bad encoding, oversize)
gives no item and a problem saying why.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final

RULES_FILE: Final = Path(__file__).resolve().parent / "data" / "note_rules.json"
# A progress note is a few thousand characters; longer text is not a note (or is many notes pasted
# together), and bounding it bounds the extractor's time. Project limit.
MAX_NOTE_CHARS: Final = 20000
# Rich Text Format: how several EHRs (Epic among them) file progress notes.
RTF_CONTENT_TYPES: Final = frozenset({"text/rtf", "application/rtf"})
TEXT_CONTENT_TYPES: Final = frozenset({"text/plain", "text/markdown", "text/html", "text/x-markdown"}) | RTF_CONTENT_TYPES
SEIZURE_ITEMS: Final = (
    "seizure_since_last_visit", "seizure_count_since_last_visit", "seizure_duration_class",
    "seizure_last_3_months", "seizure_last_6_months", "seizure_free_months", "seizure_months_ago",
)
ADVERSE_KINDS: Final = ("somnolence", "irritability", "aggression")
ITEMS: Final = (*SEIZURE_ITEMS, *ADVERSE_KINDS, "behaviour_adverse_effect", "family_requests_treatment")
_CJK: Final = re.compile(r"[\u4e00-\u9fff]")
_LETTER: Final = re.compile(r"[^\W\d_]")
# Negation cues are looked for this far before a mention, and this many mentions of a clause are
# checked: both bound the work on long run-on text (project limits; a cue is a few words away).
NEGATION_WINDOW_CHARS: Final = 120
MAX_MENTIONS: Final = 20
# Months within which a positive or negative window statement decides each window flag.
WINDOW_FLAGS: Final = (("seizure_last_3_months", 3.0), ("seizure_last_6_months", 6.0))


@dataclass
class NoteReading:
    """What one text gave: items (name → value), the language read, and problems (messages)."""

    items: dict[str, Any] = field(default_factory=dict)
    language: str | None = None
    problems: list[str] = field(default_factory=list)


class _Language:
    """The compiled rules of one language."""

    def __init__(self, name: str, table: Mapping[str, Any], days_per_unit: Mapping[str, float]) -> None:
        self.name = name
        patterns: dict[str, str] = dict(table["patterns"])

        def expand(text: str) -> str:
            for key, value in patterns.items():
                text = text.replace("{" + key + "}", value)
            return text

        def compile_(text: str) -> re.Pattern[str]:
            return re.compile(expand(text))

        self.units: dict[str, str] = table["units"]
        self.days_per_unit = days_per_unit
        self.numbers: dict[str, float] = table.get("numbers", {})
        self.clause_split = compile_(table["clause_split"])
        self.seizure_term = compile_(table["seizure_term"])
        self.seizure_free_term = compile_(table["seizure_free_term"]) if "seizure_free_term" in table else None
        self.negation_before = compile_(table["negation_before"])
        self.negation_exclusions = compile_(table["negation_exclusions"]) if "negation_exclusions" in table else None
        self.negation_gap_words = int(table.get("negation_gap_words", 0))
        self.negation_after = compile_(table["negation_after"])
        self.negation_undone = compile_(table["negation_undone"]) if "negation_undone" in table else None
        self.non_report = compile_(table["non_report"])
        # Mentions of the word that are not about events ("seizure diary", "发作日记"): removed before reading.
        self.term_exclusions = compile_(table["term_exclusions"]) if "term_exclusions" in table else None
        # "counselled on possible side effects", "post-ictally sleepy": an effect named, none reported.
        self.adverse_non_report = compile_(table["adverse_non_report"]) if "adverse_non_report" in table else None
        # "most under a minute": a duration that is not the longest.
        self.duration_not_longest = compile_(table["duration_not_longest"]) if "duration_not_longest" in table else None
        # "drowsy post-ictally for 30 minutes": the time of the state after a seizure, not of the seizure.
        self.duration_of_other_state = compile_(table["duration_of_other_state"]) if "duration_of_other_state" in table else None
        # "last seizure 8 months ago" says none since; "a seizure 4 months ago" does not.
        self.last_seizure = compile_(table["last_seizure"]) if "last_seizure" in table else None
        self.free_period = [compile_(p) for p in table["free_period"]]
        self.window = compile_(table["window"])
        self.ago = [compile_(p) for p in table["ago"]]
        self.count = [compile_(p) for p in table["count"]]
        self.count_words: dict[str, int] = table.get("count_words", {})
        # "2 x focal seizures, 1 x GTC": itemised counts add up.
        self.count_itemised = compile_(table["count_itemised"]) if "count_itemised" in table else None
        self.duration = compile_(table["duration"])
        self.duration_units: dict[str, float] = table["duration_units"]
        self.comparators: dict[str, int] = table["comparators"]
        self.adverse = {kind: compile_(table["adverse"][kind]) for kind in ADVERSE_KINDS}
        self.adverse_negation_before = compile_(table.get("adverse_negation_before", table["negation_before"]))
        self.adverse_general_denial = compile_(table["adverse_general_denial"])
        self.language_cues = compile_(table["language_cues"]) if "language_cues" in table else None
        self.other_language_cues = compile_(table["other_language_cues"]) if "other_language_cues" in table else None
        # "since the last visit 3 months ago": the time dates the visit, not a seizure.
        self.ago_of_visit = compile_(table["ago_of_visit"])
        self.interval_scope = compile_(table["interval_scope"])
        # "Parents would like to start medication", "家长要求用药" (and "prefer to wait", "暂不用药").
        self.family_request = compile_(table["family_request"]) if "family_request" in table else None
        self.family_declines = compile_(table["family_declines"]) if "family_declines" in table else None
        # "after a single nocturnal seizure", "首次发作": the child has had one seizure so far (unless the
        # sentence speaks of others, of someone else, or hedges).
        self.single_seizure = compile_(table["single_seizure"]) if "single_seizure" in table else None
        self.single_seizure_exclusions = compile_(table["single_seizure_exclusions"]) if "single_seizure_exclusions" in table else None
        # "since the dose increase in March", "开学后": a window from a date the note does not give.
        self.unanchored_window = compile_(table["unanchored_window"]) if "unanchored_window" in table else None

    # --- numbers and time --------------------------------------------------------------
    def number(self, text: str | None) -> float | None:
        if text is None:
            return None
        text = text.strip()
        try:
            return float(text)
        except ValueError:
            pass
        if self.name == "zh":
            return _zh_number(text)
        return self.numbers.get(text)

    def months(self, number: str | None, unit: str | None, half: bool = False) -> float | None:
        """A stated period in months (30.44 days); a unit without a number is one of it; ``half`` adds
        half a unit ("1年半")."""
        if unit is None:
            return None
        kind = self.units.get(unit.strip())
        if kind is None:
            return None
        count = self.number(number) if number else 1.0
        if count is None:
            return None
        return round((count + 0.5 * half) * self.days_per_unit[kind] / self.days_per_unit["month"], 2)


@dataclass(frozen=True)
class _Rules:
    languages: dict[str, _Language]
    duration_upper_seconds: tuple[float, float]
    days_per_month: float


@lru_cache(maxsize=1)
def rules() -> _Rules:
    """The compiled rule table (loaded once)."""
    table = json.loads(RULES_FILE.read_text(encoding="utf-8"))
    days = {k: float(v) for k, v in table["days_per_unit"].items()}
    upper = table["duration_class_upper_seconds"]
    return _Rules({name: _Language(name, table[name], days) for name in ("en", "zh")}, (float(upper[0]), float(upper[1])), days["month"])


_ZH_DIGITS: Final = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "半": 0.5, "数": 3, "几": 3}


def _zh_number(text: str) -> float | None:
    """一 … 九十九, 半 (0.5) and the approximate 数/几 ("a few", taken as 3)."""
    if text == "十":
        return 10.0
    if "十" in text:
        tens, _, ones = text.partition("十")
        high = _ZH_DIGITS.get(tens, 1) if tens else 1
        low = _ZH_DIGITS.get(ones, 0) if ones else 0
        return float(high * 10 + low)
    if len(text) == 1 and text in _ZH_DIGITS:
        return float(_ZH_DIGITS[text])
    return None


# --- sentences --------------------------------------------------------------------------
_SENTENCE_END: Final = re.compile(r"(?<=[.!?])\s+|[。！？\n]+")


def sentences(text: str) -> list[str]:
    """The sentences of a text (line breaks and sentence punctuation)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def language_of(sentence: str) -> str | None:
    """"zh" for text with Chinese characters, "en" for English, None for another language.

    Latin-script text is English when it has an English cue word or term, and otherwise unless it has
    a function word or accented letter of another European language ("Trough." is English, "Pas de
    crise." is not)."""
    if _CJK.search(sentence):
        return "zh"
    english = rules().languages["en"]
    lowered = sentence.lower()
    if english.language_cues is not None and english.language_cues.search(lowered):
        return "en"
    if english.seizure_term.search(lowered) or english.adverse_general_denial.search(lowered) or any(p.search(lowered) for p in english.adverse.values()):
        return "en"
    if english.other_language_cues is not None and english.other_language_cues.search(lowered):
        return None
    return "en"


def read_sentence(sentence: str) -> dict[str, Any]:
    """The items one sentence states (see the module docstring)."""
    lang = language_of(sentence)
    if lang is None:
        return {}
    return _read(sentence.lower() if lang == "en" else sentence, rules().languages[lang])


def _prefix_negated(lang: _Language, prefix: str, cue: re.Pattern[str], *, cross_commas: bool) -> bool:
    prefix = prefix[-NEGATION_WINDOW_CHARS:]
    if lang.negation_exclusions is not None:
        prefix = lang.negation_exclusions.sub(" ", prefix)
    if lang.name == "en":
        if not cross_commas:
            prefix = prefix.rsplit(",", 1)[-1]
        words = prefix.split()
        prefix = " ".join(words[-(lang.negation_gap_words + 1):])
    else:
        prefix = prefix[-8:]
    return cue.search(prefix) is not None


def _seizure_negated(lang: _Language, clause: str) -> bool:
    """A clause denies seizures when any mention is denied ("seizure diary: 0 seizures")."""
    if _undone(lang, clause):
        return False
    if lang.negation_after.search(clause):
        return True
    for number, mention in enumerate(lang.seizure_term.finditer(clause)):
        if number >= MAX_MENTIONS:
            break
        if lang.seizure_free_term is not None and lang.seizure_free_term.fullmatch(mention.group(0)):
            return True
        if _prefix_negated(lang, clause[: mention.start()], lang.negation_before, cross_commas=False):
            return True
    return False


def _undone(lang: _Language, clause: str) -> bool:
    """A seizure-free phrase that is not a denial ("seizure free until last week", "no longer seizure free")."""
    return lang.negation_undone is not None and lang.negation_undone.search(clause) is not None


def _duration_class(lang: _Language, text: str, upper: tuple[float, float]) -> int | None:
    longest: float | None = None
    for match in lang.duration.finditer(text):
        if lang.duration_not_longest is not None and lang.duration_not_longest.search(text[: match.start()]):
            continue
        if lang.duration_of_other_state is not None and lang.duration_of_other_state.search(text[: match.start()]):
            continue
        groups = match.groupdict()
        number = lang.number(groups.get("n_high") or groups["n"])  # a range counts by its upper end
        scale = lang.duration_units.get(match.group("unit"))
        if number is None or scale is None:
            continue
        seconds = number * scale
        comparator = (lang.comparators.get((groups.get("cmp_before") or "").strip(), 0)
                      or lang.comparators.get((groups.get("cmp") or "").strip(), 0) or (1 if groups.get("more") else 0))
        seconds += 0.5 * comparator  # "under 1 minute" is below 60 s, "over 5 minutes" above 300 s
        longest = seconds if longest is None else max(longest, seconds)
    if longest is None or longest <= 0:
        return None
    if longest < upper[0]:
        return 1
    return 2 if longest <= upper[1] else 3


def _count(lang: _Language, clause: str) -> int | None:
    if lang.count_itemised is not None:
        items = [lang.number(m.group("n")) for m in lang.count_itemised.finditer(clause)]
        if len(items) >= 2 and all(n is not None and n >= 1 and n == int(n) for n in items):
            return int(sum(n for n in items if n is not None))
    for pattern in lang.count:
        match = pattern.search(clause)
        if match is None:
            continue
        groups = match.groupdict()
        if groups.get("word"):
            return lang.count_words.get(groups["word"])
        number = lang.number(groups.get("n"))
        if number is not None and number == int(number) and number >= 1:
            return int(number)
    return None


def _flags_free(items: dict[str, Any], months: float) -> None:
    items["seizure_free_months"] = max(months, items.get("seizure_free_months", 0.0))
    for key, limit in WINDOW_FLAGS:
        if months >= limit:
            items[key] = False


def _read(sentence: str, lang: _Language) -> dict[str, Any]:
    table = rules()
    items: dict[str, Any] = {}
    clauses = [c for c in lang.clause_split.split(sentence) if c and c.strip()]
    positive_text: list[str] = []
    interval_denied = False
    interval_reported = False
    # A clause with no time of its own that follows a dated, windowed or historical one in the same
    # sentence describes those seizures ("2周前发作3次，成串发作"), not the interval.
    context_elsewhere = False
    _family(lang, sentence, items)
    _single_seizure(lang, sentence, items)
    for clause in clauses:
        _adverse(lang, clause, items)
        if lang.term_exclusions is not None:
            clause = lang.term_exclusions.sub(" ", clause)
        if not lang.seizure_term.search(clause):
            continue
        scoped = lang.interval_scope.search(clause) is not None
        if lang.non_report.search(clause) or (not scoped and lang.unanchored_window is not None and lang.unanchored_window.search(clause)):
            context_elsewhere = True
            continue
        negated = _seizure_negated(lang, clause)
        if context_elsewhere and not negated and not scoped and not _has_time(lang, clause):
            continue
        context_elsewhere = True
        free = None if _undone(lang, clause) else next((m for p in lang.free_period if (m := p.search(clause))), None)
        if free is not None:
            months = lang.months(free.groupdict().get("n"), free.group("unit"), bool(free.groupdict().get("half")))
            if months is not None:
                _flags_free(items, months)
                continue
        ago = None if lang.ago_of_visit.search(clause) else next((m for p in lang.ago if (m := p.search(clause))), None)
        if ago is not None and not negated:
            groups = ago.groupdict()
            months_ago = round(1 / table.days_per_month, 2) if groups.get("day") else lang.months(groups.get("n"), groups.get("unit"))
            if months_ago is not None:
                items["seizure_months_ago"] = months_ago
                last = lang.last_seizure is not None and lang.last_seizure.search(clause) is not None
                for key, limit in WINDOW_FLAGS:
                    if months_ago <= limit or last:
                        items[key] = months_ago <= limit
                positive_text.append(clause)
                continue
        window = lang.window.search(clause)
        if window is not None:
            groups = window.groupdict()
            months = lang.months(groups.get("n") or groups.get("n2"), groups.get("unit") or groups.get("unit2"))
            if months is not None:
                if negated:
                    _flags_free(items, months)
                else:
                    for key, limit in WINDOW_FLAGS:
                        if months <= limit:
                            items[key] = True
                    positive_text.append(clause)
                    counted = _count(lang, clause)
                    if counted is not None:
                        # "3 seizures in the last 11 weeks": not the interval's count, but at least that many so far.
                        items["seizures_so_far_at_least"] = max(counted, items.get("seizures_so_far_at_least", 0))
                    if lang.interval_scope.search(clause):
                        # "3 seizures since the last visit, all in the last 3 months": the interval too.
                        interval_reported = True
                        count = _count(lang, clause)
                        if count is not None and "seizure_count_since_last_visit" not in items:
                            items["seizure_count_since_last_visit"] = count
                continue
        context_elsewhere = False
        if negated:
            interval_denied = True
            continue
        interval_reported = True
        positive_text.append(clause)
        count = _count(lang, clause)
        if count is not None and "seizure_count_since_last_visit" not in items:
            items["seizure_count_since_last_visit"] = count
    if interval_reported:
        items["seizure_since_last_visit"] = True
    elif interval_denied:
        items.update(seizure_since_last_visit=False, seizure_count_since_last_visit=0, seizure_duration_class=0)
    if positive_text:
        duration = _duration_class(lang, " ".join(positive_text + [c for c in clauses if not lang.seizure_term.search(c)]), table.duration_upper_seconds)
        if duration is not None:
            items["seizure_duration_class"] = duration
    if items.get("behaviour_adverse_effect") and not any(items.get(kind) for kind in ADVERSE_KINDS):
        del items["behaviour_adverse_effect"]  # "服药后出现嗜睡，已减量，目前无嗜睡": the effect is no longer reported
    return items


def _has_time(lang: _Language, clause: str) -> bool:
    """Whether a clause states its own time: a window, a date back from today or a seizure-free period."""
    return (lang.window.search(clause) is not None or any(p.search(clause) for p in lang.ago)
            or any(p.search(clause) for p in lang.free_period))


def _adverse(lang: _Language, clause: str, items: dict[str, Any]) -> None:
    if lang.adverse_non_report is not None and lang.adverse_non_report.search(clause):
        return
    if lang.adverse_general_denial.search(clause):
        for kind in ADVERSE_KINDS:
            items.setdefault(kind, False)
        items.setdefault("behaviour_adverse_effect", False)
    for kind, pattern in lang.adverse.items():
        match = pattern.search(clause)
        if match is None:
            continue
        denied = _prefix_negated(lang, clause[: match.start()], lang.adverse_negation_before, cross_commas=True)
        items[kind] = not denied
        if not denied:
            items["behaviour_adverse_effect"] = True


def _family(lang: _Language, sentence: str, items: dict[str, Any]) -> None:
    """A family's stated wish about treatment; a declining wording is read first ("do not want medication")."""
    if lang.family_declines is not None and lang.family_declines.search(sentence):
        items["family_requests_treatment"] = False
    elif lang.family_request is not None and lang.family_request.search(sentence):
        items["family_requests_treatment"] = True


def _single_seizure(lang: _Language, sentence: str, items: dict[str, Any]) -> None:
    """A statement that the child has had one seizure so far ("seen after a first seizure 3 weeks ago")."""
    match = None if lang.single_seizure is None else lang.single_seizure.search(sentence)
    if match is None or _prefix_negated(lang, sentence[: match.start()], lang.negation_before, cross_commas=False):
        return  # "has not had a single seizure since" is a denial, not a statement
    if lang.single_seizure_exclusions is not None and lang.single_seizure_exclusions.search(sentence):
        return
    # "First seizure two weeks ago, none since": the denial is of later seizures, which supports the statement.
    items["single_seizure_so_far"] = True


# --- whole notes --------------------------------------------------------------------------
def read_text(text: str) -> NoteReading:
    """Read one note's text: items merged over its sentences, with problems."""
    reading = NoteReading()
    if len(text) > MAX_NOTE_CHARS:
        reading.problems.append(f"note text of {len(text)} characters is longer than the {MAX_NOTE_CHARS} read: not read")
        return reading
    if "\x00" in text:
        reading.problems.append("note text holds NUL characters (binary content): not read")
        return reading
    found: dict[str, list[Any]] = {}
    languages: set[str] = set()
    unread = 0
    for sentence in sentences(text):
        lang = language_of(sentence)
        if lang is None:
            unread += _LETTER.search(sentence) is not None
            continue
        languages.add(lang)
        for key, value in _read(sentence.lower() if lang == "en" else sentence, rules().languages[lang]).items():
            found.setdefault(key, []).append(value)
    if not languages and unread:
        reading.problems.append("note text is not in English or Chinese, the languages the extractor reads: not read")
        return reading
    reading.language = "+".join(sorted(languages)) or None
    reading.items, conflicts = merge_items(found)
    reading.problems += conflicts
    return reading


def merge_items(found: Mapping[str, list[Any]]) -> tuple[dict[str, Any], list[str]]:
    """One value per item from the values of several sentences, and the disagreements left unresolved."""
    merged: dict[str, Any] = {}
    problems: list[str] = []
    reported = any(found.get("seizure_since_last_visit", []))
    for key, values in found.items():
        distinct = list(dict.fromkeys(values))
        if key in ("seizure_since_last_visit", "seizure_last_3_months", "seizure_last_6_months", "behaviour_adverse_effect", *ADVERSE_KINDS,
                   "family_requests_treatment", "single_seizure_so_far"):
            merged[key] = any(distinct)  # a reported seizure or effect outweighs a denial elsewhere
            continue
        if key in ("seizure_count_since_last_visit", "seizure_duration_class") and reported:
            distinct = [v for v in distinct if v != 0] or distinct
        if key in ("seizure_free_months", "seizures_so_far_at_least"):
            merged[key] = max(distinct)
        elif key == "seizure_months_ago":
            merged[key] = min(distinct)  # the latest seizure mentioned
        elif key == "seizure_duration_class":
            merged[key] = max(distinct)  # the longest seizure
        elif len(distinct) == 1:
            merged[key] = distinct[0]
        else:
            problems.append(f"note states {key.replace('_', ' ')} as {', '.join(map(str, distinct))}: not used")
    return merged, problems


# --- text of resources ------------------------------------------------------------------
class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "td"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_text(markup: str) -> str:
    """The text of HTML (or a FHIR narrative div), block elements as line breaks."""
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    return html.unescape("".join(parser.parts))


_MARKDOWN: Final = re.compile(r"(?m)^\s{0,3}(?:#{1,6}\s+|[-*+]\s+|>\s?)|\*\*|__|`+")


def markdown_text(markdown: str) -> str:
    """Markdown with headings, bullets, emphasis and code marks removed (the words kept)."""
    return _MARKDOWN.sub("", markdown)


def _binary_for(url: str, binaries: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The Binary an attachment ``url`` names among the input's resources ("Binary/id", an absolute
    URL ending so, with or without _history, or "#id" of a contained Binary)."""
    if url.startswith("#"):
        return binaries.get(url)
    parts = url.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return binaries.get("/".join(parts[-2:])) if len(parts) >= 2 and parts[-2] == "Binary" else None


def rtf_text(payload: bytes) -> tuple[str | None, str | None]:
    """The plain text of an RTF document (striprtf: control words, font and colour tables, \\'hh and \\uN escapes)."""
    from striprtf.striprtf import rtf_to_text

    # RTF is 7-bit ASCII with escapes; a stray 8-bit byte is read as Windows-1252, RTF's usual code page.
    source = payload.decode("cp1252", errors="replace")
    if not source.lstrip().startswith("{\\rtf"):
        return None, "attachment of type RTF does not start with {\\rtf: not read"
    try:
        return rtf_to_text(source, errors="replace"), None
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, UnicodeError) as error:  # malformed escapes
        return None, f"RTF attachment could not be read ({type(error).__name__}): not read"


def attachment_text(attachment: object, binaries: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[str | None, str | None]:
    """(text, None) of a FHIR Attachment with inline ``data`` (or a ``url`` to a Binary in ``binaries``:
    the input's Binary resources by "Binary/id", contained ones by "#id"), or (None, why it cannot be read).
    A Binary is never fetched: the mapping does no I/O."""
    if not isinstance(attachment, dict):
        return None, "attachment is not an object"
    url = attachment.get("url")
    if not isinstance(attachment.get("data"), str) and isinstance(url, str) and binaries:
        binary = _binary_for(url.strip(), binaries)
        if binary is not None:
            attachment = {"contentType": binary.get("contentType") or attachment.get("contentType"), "data": binary.get("data")}
    raw_type = attachment.get("contentType")
    content_type = raw_type.split(";")[0].strip().lower() if isinstance(raw_type, str) else ""
    charset = "utf-8"
    if isinstance(raw_type, str) and "charset=" in raw_type.lower():
        charset = raw_type.lower().split("charset=", 1)[1].split(";")[0].strip() or "utf-8"
    if content_type and content_type not in TEXT_CONTENT_TYPES:
        return None, f"attachment of type {content_type!r} is not text (text/plain, text/markdown, text/html or RTF is read)"
    data = attachment.get("data")
    if not isinstance(data, str):
        if isinstance(attachment.get("url"), str):
            return None, "attachment by url to a Binary not in the input: it is not fetched (only inline data and Binary resources given with the data are read)"
        return None, "attachment without data"
    if len(data) > MAX_NOTE_CHARS * 8:
        return None, f"attachment of {len(data)} base64 characters is too large to be a note: not read"
    try:
        payload = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None, "attachment data is not valid base64"
    if b"\x00" in payload:
        return None, "attachment holds binary content: not read"
    if content_type in RTF_CONTENT_TYPES or payload.lstrip().startswith(b"{\\rtf"):
        return rtf_text(payload)
    try:
        text = payload.decode("utf-8-sig" if charset in ("utf-8", "utf8") else charset)
    except (UnicodeDecodeError, LookupError):
        return None, f"attachment text is not valid {charset}: not read"
    if content_type == "text/html" or (not content_type and text.lstrip().startswith("<")):
        text = html_text(text)
    elif content_type in ("text/markdown", "text/x-markdown"):
        text = markdown_text(text)
    return text, None


def resource_texts(resource: Mapping[str, Any], binaries: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The note texts of a resource as (path, text), and what could not be read as (path, why).

    DocumentReference ``content[].attachment`` (inline data, or a Binary of ``binaries`` or contained);
    ``note[].text`` of Condition and Observation; the narrative ``text.div`` of an Encounter (R4
    Encounter has no ``note``).
    """
    texts: list[tuple[str, str]] = []
    unread: list[tuple[str, str]] = []
    kind = resource.get("resourceType")
    if kind == "DocumentReference":
        known = dict(binaries or {})
        contained = resource.get("contained")
        for item in contained if isinstance(contained, list) else []:
            if isinstance(item, dict) and item.get("resourceType") == "Binary" and isinstance(item.get("id"), str):
                known["#" + item["id"]] = item
        content = resource.get("content")
        for index, entry in enumerate(content if isinstance(content, list) else []):
            path = f"content[{index}].attachment"
            text, why = attachment_text(entry.get("attachment") if isinstance(entry, dict) else None, known)
            if text is not None:
                texts.append((path, text))
            elif why is not None:
                unread.append((path, why))
    notes = resource.get("note")
    for index, note in enumerate(notes if isinstance(notes, list) else []):
        if isinstance(note, dict) and isinstance(note.get("text"), str):
            texts.append((f"note[{index}].text", markdown_text(note["text"])))
    if kind == "Observation" and isinstance(resource.get("valueString"), str):
        texts.append(("valueString", resource["valueString"]))  # read for seizure findings only (fhir_mapping.build)
    if kind == "Encounter":
        narrative = resource.get("text")
        if isinstance(narrative, dict) and isinstance(narrative.get("div"), str) and narrative.get("status") != "generated":
            texts.append(("text.div", html_text(narrative["div"])))
    return texts, unread
