"""The note extractor (fhir_mapping.notes): precision and recall per item on the labelled sentences,
and how it reads negations, time expressions and bad text."""

from __future__ import annotations

import base64
import json

import pytest

from fhir_mapping.notes import ITEMS, MAX_NOTE_CHARS, attachment_text, read_sentence, read_text
from tests.fhir_mapping.note_scores import NOTES, load, score
from training.simulator.notes import template_set

HANDWRITTEN = ("handwritten_heldout.jsonl", "handwritten_heldout2.jsonl", "handwritten_heldout3.jsonl", "handwritten_fresh.jsonl",
               "handwritten_fresh2.jsonl")
TEMPLATE_FLOOR = 0.95
HANDWRITTEN_FLOOR = 0.90
MIN_LABELLED = 5  # items labelled fewer times are reported by bench/notes.py, not held to a floor


def test_labelled_set_holds_at_least_300_sentences_in_both_languages() -> None:
    rows = [r for name in (*HANDWRITTEN, "templates.jsonl") for r in load(name)]
    assert len(rows) >= 300
    for name in (*HANDWRITTEN, "templates.jsonl"):
        texts = [r["text"] for r in load(name)]
        chinese = sum(any("\u4e00" <= ch <= "\u9fff" for ch in t) for t in texts)
        assert 0.2 * len(texts) < chinese < 0.8 * len(texts), name
    assert all(set(r["labels"]) <= set(ITEMS) for r in rows)


def test_stored_template_sentences_are_the_generator_output() -> None:
    """templates.jsonl is template_set(240, seed=0) as generated, not edited by hand."""
    assert load("templates.jsonl") == [{**r, "labels": {k: v for k, v in r["labels"].items() if v is not None}} for r in template_set(240, seed=0)]


@pytest.mark.parametrize("rows", [load("templates.jsonl"), template_set(300, seed=7)], ids=["stored", "fresh-seed"])
def test_template_sentences_meet_the_floor_per_item(rows: list[dict]) -> None:
    scores, errors = score(rows)
    for item, s in scores.items():
        if s.true_positive + s.false_negative >= MIN_LABELLED:
            assert s.precision >= TEMPLATE_FLOOR and s.recall >= TEMPLATE_FLOOR, (item, errors)


def test_handwritten_sentences_meet_the_floor_per_item() -> None:
    rows = [r for name in HANDWRITTEN for r in load(name)]
    scores, errors = score(rows)
    checked = 0
    for item, s in scores.items():
        if s.true_positive + s.false_negative >= MIN_LABELLED:
            checked += 1
            assert s.precision >= HANDWRITTEN_FLOOR and s.recall >= HANDWRITTEN_FLOOR, (item, errors)
    # The family's request is not a published state item and the batches do not label it: its own
    # sentences are below; here it must simply never fire on a batch sentence.
    assert checked == len(ITEMS) - 1
    assert scores["family_requests_treatment"].false_positive == 0, errors


@pytest.mark.parametrize(("text", "expected"), [
    ("Parents are keen to start medication.", True),
    ("Parents wish to start treatment.", True),
    ("Mum would like him to start treatment after this seizure.", True),
    ("Started levetiracetam at the parents' request.", True),
    ("Grandmother is asking for a medicine to stop the seizures.", True),
    ("Parents do not want medication for now.", False),
    ("Family prefer to wait and see.", False),
    ("Parents asked about the side effects of treatment.", None),
    ("家长要求开始药物治疗。", True),
    ("父母希望用药。", True),
    ("家长暂不考虑用药，选择观察。", False),
    ("家长担心药物副作用。", None),
])
def test_the_familys_wish_about_treatment(text: str, expected: bool | None) -> None:
    """domain.md §6: treatment after a single seizure at the family's request; a decline reads as false."""
    assert read_sentence(text).get("family_requests_treatment") == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("No seizures since the last visit.", {"seizure_since_last_visit": False, "seizure_count_since_last_visit": 0, "seizure_duration_class": 0}),
    ("No change in seizure frequency.", {}),
    ("Seizure free until two weeks ago.", {"seizure_months_ago": 0.46, "seizure_last_3_months": True, "seizure_last_6_months": True}),
    ("无明显诱因抽搐2次。", {"seizure_since_last_visit": True, "seizure_count_since_last_visit": 2}),
    ("近3个月无发作", {"seizure_free_months": 3.0, "seizure_last_3_months": False}),
    ("发作十二次", {"seizure_since_last_visit": True, "seizure_count_since_last_visit": 12}),
    ("Seizures twice a month.", {"seizure_since_last_visit": True}),
    ("有无发作：无。", {"seizure_since_last_visit": False, "seizure_count_since_last_visit": 0, "seizure_duration_class": 0}),
    ("有无发作：有", {"seizure_since_last_visit": True}),
    ("主诉：发作性抽搐2年。", {}),  # a chief complaint's history, not the interval
    ("4 seizures since the last visit 3 months ago, the longest 2 minutes.",  # the time dates the visit
     {"seizure_since_last_visit": True, "seizure_count_since_last_visit": 4, "seizure_duration_class": 2}),
    ("3 seizures since the last visit, all in the last 3 months.",
     {"seizure_since_last_visit": True, "seizure_count_since_last_visit": 3, "seizure_last_3_months": True, "seizure_last_6_months": True,
      "seizures_so_far_at_least": 3}),
    ("Trough.", {}),
    ("未发作1年。", {"seizure_free_months": 12.0, "seizure_last_3_months": False, "seizure_last_6_months": False}),
])
def test_sentences(text: str, expected: dict) -> None:
    assert read_sentence(text) == expected


INTERVAL_DENIAL = {"seizure_since_last_visit": False, "seizure_count_since_last_visit": 0, "seizure_duration_class": 0}
NOTHING: dict = {}


@pytest.mark.parametrize(("text", "expected"), [
    # history, family history, plans, education and hedges state nothing
    ("Family history: his uncle had seizures.", NOTHING),
    ("Presented at age 5 with two nocturnal seizures.", NOTHING),
    ("Previously had a 15 minute seizure in 2021.", NOTHING),
    ("Seizure diary reviewed.", NOTHING),
    ("No seizure since last visit, seizure diary reviewed.", INTERVAL_DENIAL),
    ("Counselled that levetiracetam can cause drowsiness and irritability.", NOTHING),
    ("Sleepy post-ictally after his last seizure.", NOTHING),
    ("Had a seizure last night, confused after the seizure.", {"seizure_months_ago": 0.03, "seizure_last_3_months": True, "seizure_last_6_months": True}),
    ("未再发，已3个月。", {"seizure_free_months": 3.0, "seizure_last_3_months": False}),
    ("无再发皮疹。", NOTHING),
    ("家族史：母亲幼时有抽搐。", NOTHING),
    ("？夜间抽搐，家长未见。", NOTHING),
    ("疑有发作一次。", NOTHING),
    ("告知家长注意观察嗜睡等不良反应。", NOTHING),
    ("抽了血查血药浓度。", NOTHING),
    # seizure-free periods, not interval denials
    ("Seizure free for 6/12.", {"seizure_free_months": 6.0, "seizure_last_3_months": False, "seizure_last_6_months": False}),
    ("Nil seizures for 4 months.", {"seizure_free_months": 4.0, "seizure_last_3_months": False}),
    ("Seizure free > 1 yr.", {"seizure_free_months": 12.0, "seizure_last_3_months": False, "seizure_last_6_months": False}),
    ("Free of seizures for 3 weeks.", {"seizure_free_months": 0.69}),
    ("Seizure-free since the dose was increased 5 months ago.", {"seizure_free_months": 5.0, "seizure_last_3_months": False}),
    ("seizure frre since last review", INTERVAL_DENIAL),  # a misspelt "free" is no report
    ("未再抽搐，已1年半。", {"seizure_free_months": 18.0, "seizure_last_3_months": False, "seizure_last_6_months": False}),
    ("无发作满1年。", {"seizure_free_months": 12.0, "seizure_last_3_months": False, "seizure_last_6_months": False}),
    ("抽搐已停止半年。", {"seizure_free_months": 6.0, "seizure_last_3_months": False, "seizure_last_6_months": False}),
    # denials and reports the other way round
    ("No change, still about 3 seizures a month.", {"seizure_since_last_visit": True}),
    ("Seizures: 2 per month.", {"seizure_since_last_visit": True}),
    ("复诊后抽搐0次。", INTERVAL_DENIAL),
    ("发作控制良好，未再发作。", INTERVAL_DENIAL),
    # windows and dated seizures are not the interval; one dated seizure says nothing of the months after it
    ("Three seizures in the last fortnight.", {"seizure_last_3_months": True, "seizure_last_6_months": True, "seizures_so_far_at_least": 3}),
    ("Seizures x2 in past 3/12.", {"seizure_last_3_months": True, "seizure_last_6_months": True, "seizures_so_far_at_least": 2}),
    ("Seizure 3/52 ago.", {"seizure_months_ago": 0.69, "seizure_last_3_months": True, "seizure_last_6_months": True}),
    ("上周抽搐1次。", {"seizure_months_ago": 0.23, "seizure_last_3_months": True, "seizure_last_6_months": True}),
    ("今天早上发作1次。", {"seizure_months_ago": 0.03, "seizure_last_3_months": True, "seizure_last_6_months": True}),
    ("近2个月发作2次，均在夜间。", {"seizure_last_3_months": True, "seizure_last_6_months": True, "seizures_so_far_at_least": 2}),
    ("A seizure 5 months ago.", {"seizure_months_ago": 5.0, "seizure_last_6_months": True}),
    ("Last seizure 5 months ago.", {"seizure_months_ago": 5.0, "seizure_last_3_months": False, "seizure_last_6_months": True}),
    # counts
    ("复诊后又发作数次。", {"seizure_since_last_visit": True}),  # "several" states no count
    ("x2 seizures since last review", {"seizure_since_last_visit": True, "seizure_count_since_last_visit": 2}),
    ("Seizures: 4 since last visit.", {"seizure_since_last_visit": True, "seizure_count_since_last_visit": 4}),
    ("Another fit since last review.", {"seizure_since_last_visit": True, "seizure_count_since_last_visit": 1}),
    ("Since the last visit: 1 x GTC, 2 x focal seizures.", {"seizure_since_last_visit": True, "seizure_count_since_last_visit": 3}),
    ("上次复诊后出现1次全身强直阵挛发作。", {"seizure_since_last_visit": True, "seizure_count_since_last_visit": 1}),
    # a duration that is not the longest gives no class
    ("5 seizures since last visit, mostly under 30 seconds.", {"seizure_since_last_visit": True, "seizure_count_since_last_visit": 5}),
    # adverse effects as written, misspellings included
    ("Tired on Keppra.", {"somnolence": True, "behaviour_adverse_effect": True}),
    ("Mum says he is tired of taking his medicine.", NOTHING),
    ("Drowsey in the mornings.", {"somnolence": True, "behaviour_adverse_effect": True}),
    ("Grumpier since starting LEV.", {"irritability": True, "behaviour_adverse_effect": True}),
    ("Irritible at school.", {"irritability": True, "behaviour_adverse_effect": True}),
    ("服药后脾气变差。", {"irritability": True, "behaviour_adverse_effect": True}),
    ("性格暴躁。", {"irritability": True, "behaviour_adverse_effect": True}),
    ("加药后易激若。", {"irritability": True, "behaviour_adverse_effect": True}),
])
def test_phrasings_of_the_fresh_handwritten_batch(text: str, expected: dict) -> None:
    """Each error class the fresh batch showed at its first run, in new words."""
    assert read_sentence(text) == expected


WINDOW_FLAGS_6 = {"seizure_last_3_months": False, "seizure_last_6_months": False}


@pytest.mark.parametrize(("text", "expected"), [
    # windows whose length is said in other words give the window items, never the interval
    ("Over the last quarter no fits at all.", {"seizure_free_months": 3.0, "seizure_last_3_months": False}),
    ("No events for around seven months.", {"seizure_free_months": 7.0, **WINDOW_FLAGS_6}),
    ("Fit free since 3 years.", {"seizure_free_months": 36.0, **WINDOW_FLAGS_6}),
    ("Nil seizures in the past half year.", {"seizure_free_months": 6.0, **WINDOW_FLAGS_6}),
    ("Two seizures over the previous half a year.", {"seizure_last_6_months": True, "seizures_so_far_at_least": 2}),
    ("2年半无发作", {"seizure_free_months": 30.0, **WINDOW_FLAGS_6}),
    ("半年来发作2次。", {"seizure_last_6_months": True, "seizures_so_far_at_least": 2}),
    # windows from a date or event the note does not give: length unknown, so nothing
    ("No seizures since the switch to the evening dose in June.", NOTHING),
    ("A few fits over the Christmas holidays.", NOTHING),
    ("None since term started, says dad.", NOTHING),
    ("放寒假后未再发作。", NOTHING),
    ("国庆期间发作1次。", NOTHING),
    # family history, referral letters, the last visit's report, chief complaints, hedges, education
    ("FHx: maternal uncle with childhood seizures.", NOTHING),
    ("Dear Dr Jones, I saw this girl with focal seizures today.", NOTHING),
    ("At the previous review dad described three seizures.", NOTHING),
    ("The events reported at the last visit have not recurred.", INTERVAL_DENIAL),
    ("4岁时首次抽搐，表现为一侧肢体抽动。", NOTHING),  # the second clause describes the first seizure
    ("3天前抽搐2次，伴意识不清发作。", {"seizure_months_ago": 0.1, "seizure_last_3_months": True, "seizure_last_6_months": True}),
    ("疑似夜间发作，未录像。", NOTHING),
    ("上次复诊时诉抽搐1次。", NOTHING),
    ("主诉：反复抽搐1年。", NOTHING),
    ("与发作无关。", NOTHING),
    ("发作间隔较前缩短。", NOTHING),
    # adverse effects: past or hedged mentions, post-ictal states and effects since resolved are not reports
    ("Used to be very drowsy on the old dose, now fine.", NOTHING),
    ("Dad wondered if LEV could make her irritable.", NOTHING),
    ("Drowsy post ictally for 30 minutes after the seizure.", {"seizure_since_last_visit": True}),
    ("发作后嗜睡，持续约10分钟。", {"seizure_since_last_visit": True}),
    ("以前曾有烦躁，现已好转。", NOTHING),
    ("白天不困倦，无脾气暴躁。", {"somnolence": False, "irritability": False}),
    ("服药初期困倦，现已无困倦。", {"somnolence": False}),
    ("无发作和副作用。", {**INTERVAL_DENIAL, "somnolence": False, "irritability": False, "aggression": False, "behaviour_adverse_effect": False}),
    ("Tried to bite his brother at nursery.", {"aggression": True, "behaviour_adverse_effect": True}),
    ("Gets angry about little things.", {"irritability": True, "behaviour_adverse_effect": True}),
    ("近来爱生气。", {"irritability": True, "behaviour_adverse_effect": True}),
    # seizures told by their signs
    ("Since last clinic she had brief twitching of the left side of the face, twice, about 30 seconds.",
     {"seizure_since_last_visit": True, "seizure_count_since_last_visit": 2, "seizure_duration_class": 1}),
    ("Dad saw facial twitching and drooling and she could not speak, once since the last review.",
     {"seizure_since_last_visit": True, "seizure_count_since_last_visit": 1}),
    ("No facial twitching since last visit.", INTERVAL_DENIAL),
    ("上次复诊以来出现右侧口角抽动1次，约40秒。", {"seizure_since_last_visit": True, "seizure_count_since_last_visit": 1, "seizure_duration_class": 1}),
    ("半侧面部抽动，持续1分钟。", {"seizure_since_last_visit": True, "seizure_duration_class": 2}),
])
def test_phrasings_of_the_second_fresh_handwritten_batch(text: str, expected: dict) -> None:
    """Each error class the second fresh batch showed at its first run, in new words."""
    assert read_sentence(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Seen 3 weeks after a first seizure that lasted about 12 minutes; none since.", True),
    ("First neurology visit after a single nocturnal seizure 8 weeks ago.", True),
    ("First seizure two weeks ago, none since.", True),
    ("A single seizure only.", True),
    ("首次发作于2周前，无再发。", True),
    ("仅发作1次。", True),
    ("He has not had a single seizure since starting.", None),  # a denial, not a count
    ("No first seizure.", None),
    ("Since his first seizure in 2021 he has had 5 more.", None),
    ("Her first seizure was at age 4; several since.", None),
    ("This was his second seizure.", None),
    ("Possible first seizure last night?", None),
    ("Brother had a single febrile seizure.", None),  # someone else's
    ("Discussed seizure first aid.", None),
    ("First seizure at age 6, 3 in all.", None),
    ("4岁时首次抽搐，表现为一侧肢体抽动。", None),  # history dated by age: says nothing of the count
    ("首次发作以来共发作3次。", None),
    ("第二次发作。", None),
])
def test_a_statement_of_one_seizure_so_far(text: str, expected: bool | None) -> None:
    assert read_text(text).items.get("single_seizure_so_far") is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("3 seizures in the last 11 weeks, one in daytime.", 3),
    ("Two seizures over the previous half a year.", 2),
    ("近3个月发作3次。", 3),
    ("No seizures in the last 3 months.", None),
    ("Seizure-free for the last 6 months.", None),
])
def test_a_count_within_a_window_is_a_lower_bound_on_the_seizures_so_far(text: str, expected: int | None) -> None:
    assert read_text(text).items.get("seizures_so_far_at_least") == expected


def test_a_reported_seizure_outweighs_a_denial_in_the_same_note() -> None:
    reading = read_text("No daytime seizures. One nocturnal seizure lasting 2 minutes.")
    assert reading.items == {"seizure_since_last_visit": True, "seizure_count_since_last_visit": 1, "seizure_duration_class": 2}


def test_disagreeing_counts_in_one_note_are_dropped_with_a_problem() -> None:
    reading = read_text("Two seizures since the last visit. Four seizures since the last visit.")
    assert "seizure_count_since_last_visit" not in reading.items and reading.items["seizure_since_last_visit"] is True
    assert len(reading.problems) == 1


@pytest.mark.parametrize(("text", "why"), [
    ("Keine Anfälle seit dem letzten Besuch.", "not in English or Chinese"),
    ("Geen aanvallen sinds het laatste bezoek.", "not in English or Chinese"),
    ("no seizures\x00", "NUL"),
    ("No seizures. " * (MAX_NOTE_CHARS // 10), "longer than"),
])
def test_unreadable_text_gives_no_item_and_says_why(text: str, why: str) -> None:
    reading = read_text(text)
    assert read_text("Trough.").problems == []  # a terse English note is not "another language"
    assert reading.items == {} and len(reading.problems) == 1 and why in reading.problems[0]


@pytest.mark.parametrize(("attachment", "why"), [
    ({"contentType": "application/pdf", "data": base64.b64encode(b"%PDF").decode()}, "not text"),
    ({"contentType": "text/plain", "data": "***"}, "base64"),
    ({"contentType": "text/plain; charset=utf-8", "data": base64.b64encode("é".encode("latin-1")).decode()}, "not valid utf-8"),
    ({"contentType": "text/plain", "url": "Binary/1"}, "url"),
    ({"contentType": "text/plain", "data": base64.b64encode(b"a\x00b").decode()}, "binary"),
])
def test_unreadable_attachments_say_why(attachment: dict, why: str) -> None:
    text, problem = attachment_text(attachment)
    assert text is None and problem is not None and why in problem


def test_attachments_in_each_text_type_and_charset_are_read() -> None:
    def data(text: str, encoding: str = "utf-8") -> str:
        return base64.b64encode(text.encode(encoding)).decode()

    assert attachment_text({"contentType": "text/html", "data": data("<p>No seizures</p><script>x</script>")})[0] == "\nNo seizures"
    assert attachment_text({"contentType": "text/markdown", "data": data("## Seizures\n- **none**")})[0] == "Seizures\nnone"
    assert attachment_text({"contentType": "text/plain; charset=gb18030", "data": data("无发作", "gb18030")})[0] == "无发作"


def test_rtf_notes_are_read_with_their_escapes() -> None:
    """Progress notes filed as RTF (text/rtf, application/rtf, or unlabelled): font tables dropped, \\par a line
    break, \\'hh and \\uN escapes decoded, so the seizure history in them reaches the mapping."""
    rtf = (r"{\rtf1\ansi\ansicpg1252{\fonttbl\f0\fswiss Helvetica;}{\colortbl;\red0\green0\blue0;}\f0\pard "
           r"3 seizures since the last visit, the longest 2 minutes.\par Parents wish to start treatment.\par "
           r"Caf\'e9 at school.\par \u24739?\u20799?\u36817?2\u20010?\u26376?\u21457?\u20316?3\u27425?\u12290?\par}")
    encoded = base64.b64encode(rtf.encode("ascii")).decode()
    for content_type in ("text/rtf", "application/rtf", None):
        attachment = {"data": encoded} if content_type is None else {"contentType": content_type, "data": encoded}
        text, why = attachment_text(attachment)
        assert why is None and text is not None, content_type
        assert "3 seizures since the last visit" in text and "Café" in text and "患儿近2个月发作3次" in text
        assert "Helvetica" not in text and "\\par" not in text
    reading = read_text(attachment_text({"contentType": "text/rtf", "data": encoded})[0] or "")
    assert reading.items["seizure_count_since_last_visit"] == 3 and reading.items["family_requests_treatment"] is True


def test_malformed_rtf_is_said_never_raised() -> None:
    for broken in (r"{\rtf1 \par\uc\uc2\parud f}d\uc289  b2u{42\par-3r2{ *}", "plain words labelled RTF"):
        text, why = attachment_text({"contentType": "text/rtf", "data": base64.b64encode(broken.encode()).decode()})
        assert (text is None) == (why is not None)


def test_rules_are_data() -> None:
    """Every rule the extractor applies is in the JSON table (both languages carry the same sections)."""
    table = json.loads((NOTES.parents[2] / "fhir_mapping" / "data" / "note_rules.json").read_text(encoding="utf-8"))
    for section in ("seizure_term", "negation_before", "negation_after", "non_report", "term_exclusions", "free_period", "window", "ago", "last_seizure",
                    "count", "count_itemised", "duration", "duration_not_longest", "adverse", "adverse_general_denial", "adverse_non_report",
                    "unanchored_window", "duration_of_other_state"):
        assert section in table["en"] and section in table["zh"], section
