"""The hand-written clinical charts: one function per child, its facts written out literally.

Run ``python -m tests.clinical.charts_source`` to (re)write ``tests/clinical/charts/*.json`` from these
functions; ``test_charts.py`` checks the JSON files still match. Every chart is dated as of
``chart.CHART_DAY`` (2026-12-01). Seizure history is recorded twice, as charts hold it: the project's
follow-up Observations (``seizures``, what the mapping reads today) and what an EHR records (Conditions,
Encounter reason codes in ``encounters``, progress notes in ``notes``).

Label figures in the ``expect`` blocks are computed here by hand from shared/domain.md §2 (FDA Keppra
label, EU SmPC, Kinderformularium renal fractions, bedside Schwartz eGFR), independently of
``fhir_mapping.dosing``, so the suite can catch an error there too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.clinical import chart as c

CHARTS_DIR = Path(__file__).parent / "charts"
PRACTITIONER = "Practitioner/dr-lin"

# Label maxima in mg/kg/day by age band (shared/domain.md §2): 21, 25, 30 mg/kg BID; 3000 mg/day at any age.
MAX_1_TO_6_MONTHS = 42.0
MAX_6_MONTHS_TO_4_YEARS = 50.0
MAX_4_TO_16_YEARS = 60.0
ABSOLUTE_MAX = 3000.0
# Kinderformularium renal fractions (domain.md §2): eGFR 50–80 → 66%, 30–50 → 50%, 10–30 → 33%.
RENAL_50_80, RENAL_30_50, RENAL_10_30 = 0.66, 0.50, 0.33
# Largest change every 2 weeks (domain.md §2): ±10 mg/kg BID below 50 kg (EU SmPC), +7 mg/kg BID below
# 6 months (FDA label), ±500 mg BID from 50 kg or 16 years.
STEP_PER_KG, STEP_PER_KG_BELOW_6_MONTHS, STEP_ADULT = 20.0, 14.0, 1000.0
LB_KG = 0.45359237  # kg per international avoirdupois pound (UCUM [lb_av])


def schwartz(height_cm: float, creatinine_mg_dl: float) -> float:
    """Bedside Schwartz eGFR (Schwartz, JASN 2009; domain.md §2), for the expectations' arithmetic."""
    return 0.413 * height_cm / creatinine_mg_dl


@dataclass(frozen=True)
class Visit:
    """One follow-up visit as the chart holds it: an Encounter, the project's seizure report, a note."""

    day: str
    count: int | None  # seizures since the previous visit
    last_3_months: bool | None = None
    last_6_months: bool | None = None
    duration: str | None = None
    exam: str | None = "good"
    assessment: str | None = None
    adverse_effect: bool | None = None
    reason: str | None = None  # the Encounter's reason code (a CONDITION_CODES key)
    note: str | None = None
    note_as_rtf: bool = False  # the note filed as an RTF document (text/rtf)


def follow_up(pid: str, visits: list[Visit]) -> tuple[list[c.Resource], list[c.Resource], list[c.Resource]]:
    """Encounters, project seizure-report Observations and progress notes of a list of visits."""
    encounters, reports, notes = [], [], []
    for number, visit in enumerate(visits, start=1):
        eid = f"{pid}-enc{number}"
        encounters.append(c.encounter(eid, pid, visit.day, reason=visit.reason))
        reports += c.seizure_report(f"{pid}-v{number}", pid, visit.day, eid, count=visit.count,
                                    last_3_months=visit.last_3_months, last_6_months=visit.last_6_months,
                                    duration=visit.duration, exam=visit.exam, assessment=visit.assessment,
                                    adverse_effect=visit.adverse_effect)
        if visit.note:
            notes.append(c.progress_note(f"{pid}-note{number}", pid, visit.day, visit.note, eid, rtf=visit.note_as_rtf))
    return encounters, reports, notes


def request(name: str, hook: str, pid: str, *, patient: c.Resource, weights: list[c.Resource] | None,
            heights: list[c.Resource], labs: list[c.Resource], conditions: list[c.Resource],
            medications: list[c.Resource], visits: list[Visit], extra_encounters: list[c.Resource] | None = None,
            draft: c.Resource | None = None, sandbox: bool = False, statements: list[c.Resource] | None = None,
            expect: dict[str, Any]) -> dict[str, Any]:
    """The CDS Hooks request a chart is sent as, prefetch keyed as hooks/*.json, with its expectations."""
    encounters, reports, notes = follow_up(pid, visits)
    encounters = sorted(encounters + (extra_encounters or []), key=lambda e: e["period"]["start"], reverse=True)
    context: dict[str, Any] = {"userId": PRACTITIONER, "patientId": pid,
                               "encounterId": f"{pid}-enc{len(visits)}" if visits else f"{pid}-enc"}
    if draft is not None:
        context["draftOrders"] = c.sandbox_draft(draft) if sandbox else c.draft(draft)
    prefetch = {
        "patient": patient,
        # The weight and height templates ask for the latest one only (_sort=-date&_count=1).
        "weight": None if weights is None else c.bundle(weights),
        "height": c.bundle(heights),
        "seizures": c.bundle(sorted(reports, key=lambda r: r["effectiveDateTime"], reverse=True)),
        "labs": c.bundle(labs),
        "conditions": c.bundle(conditions),
        "medications": c.bundle(medications),
        # Medicines recorded as taken (MedicationStatement), as medicines reconciliation records them.
        "statements": c.bundle(statements or []),
        # What an EHR records besides: encounters with their reasons, and progress notes.
        "encounters": c.bundle(encounters),
        "notes": c.bundle(notes),
    }
    return {"hook": hook, "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, f"epidose-chart:{name}")),
            "context": context, "prefetch": prefetch, "expect": expect}


# --- the charts --------------------------------------------------------------------------------

def c01_raise_12y_70kg_still_seizing_on_14_mg_kg() -> dict[str, Any]:
    pid = "c01-tom"
    return request("c01", "patient-view", pid,
        patient=c.patient(pid, "2014-09-20", "male", "Tom", "Becker"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 70.0, encounter=f"{pid}-enc3")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 158.0, encounter=f"{pid}-enc3")],
        labs=[c.creatinine(f"{pid}-cr", pid, "2026-09-01", 0.62)],
        conditions=[
            c.condition(f"{pid}-bect", pid, "44145005", onset="2022-03-10",
                        note="Nocturnal hemifacial seizures; EEG centrotemporal spikes bilaterally."),
            c.condition(f"{pid}-sz", pid, "91175000", onset="2026-11-14", category="encounter-diagnosis",
                        encounter=f"{pid}-enc3", note="2 nocturnal focal seizures since the last visit 3 months ago."),
        ],
        medications=[
            c.lev_order(f"{pid}-lev2", pid, "311289", 1, "tablet", per_day=2, authored="2023-01-12"),
            c.lev_order(f"{pid}-lev1", pid, "311288", 1, "tablet", per_day=2, authored="2022-04-02",
                        status="completed", end="2023-01-11"),
        ],
        visits=[
            Visit("2026-06-02", 1, True, True, "under-1-min", assessment="stable"),
            Visit("2026-09-01", 1, True, True, "under-1-min", assessment="stable"),
            Visit("2026-12-01", 2, True, True, "under-1-min", assessment="worse", reason="91175000",
                  note="Two nocturnal focal seizures with drooling and speech arrest since the last visit, each "
                       "under a minute. Takes levetiracetam 500 mg twice daily, no missed doses. Weight 70 kg."),
        ],
        expect={"action": "raise", "cards": "one", "step_mg_per_day": STEP_ADULT, "rules": ["R-NO-DECREASE-WHILE-SEIZING"], "current_mg_per_day": 1000,
                "max_mg_per_day": min(MAX_4_TO_16_YEARS * 70.0, ABSOLUTE_MAX),
                "recommended": {"min": 1001, "max": 3000}, "form": "tablet",
                "cites": ["1000 mg/day", "14 mg/kg/day"],
                "why": "Still seizing on 14 mg/kg/day, far below the 60 mg/kg/day maximum: titrate up within the "
                       "label before changing drug (domain.md §6, §2)."})


def c02_still_seizing_near_maximum() -> dict[str, Any]:
    pid = "c02-lucia"
    return request("c02", "patient-view", pid,
        patient=c.patient(pid, "2017-07-08", "female", "Lucia", "Ferreira"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 28.3, encounter=f"{pid}-enc3")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 133.0, encounter=f"{pid}-enc3")],
        labs=[c.creatinine(f"{pid}-cr", pid, "2026-06-03", 0.48)],
        conditions=[c.condition(f"{pid}-dx", pid, "G40.009", onset="2024-11-02", category="encounter-diagnosis",
                                note="Self-limited epilepsy with centrotemporal spikes.")],
        medications=[
            c.lev_order(f"{pid}-lev3", pid, "311290", 1, "tablet", per_day=2, authored="2026-04-07"),
            c.lev_order(f"{pid}-lev2", pid, "311289", 1, "tablet", per_day=2, authored="2025-09-09",
                        status="completed", end="2026-04-06"),
            c.lev_order(f"{pid}-lev1", pid, "311288", 1, "tablet", per_day=2, authored="2025-03-04",
                        status="completed", end="2025-09-08"),
        ],
        visits=[
            Visit("2026-06-03", 3, True, True, "1-to-5-min", assessment="stable"),
            Visit("2026-09-02", 2, True, True, "under-1-min", assessment="improved"),
            Visit("2026-12-01", 1, True, True, "under-1-min", assessment="improved", reason="G40.009",
                  note="One nocturnal seizure 6 weeks ago on levetiracetam 750 mg twice daily (53 mg/kg/day)."),
        ],
        expect={"action": ["keep", "raise"], "cards": "one", "step_mg_per_day": STEP_PER_KG * 28.3, "rules": ["R-NO-DECREASE-WHILE-SEIZING"], "current_mg_per_day": 1500,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 28.3,
                "recommended": {"min": 1500, "max": MAX_4_TO_16_YEARS * 28.3}, "form": "tablet",
                "cites": ["1500 mg/day", "53 mg/kg/day"],
                "why": "Seizures in the last 3 months on 53 mg/kg/day, near the 60 mg/kg/day maximum: keep or raise "
                       "within it, never lower while seizing (issue rail; domain.md §2, §6)."})


def _amira(name: str, hook: str, draft: c.Resource | None, expect: dict[str, Any]) -> dict[str, Any]:
    """11 years, 38 kg, on 1000 mg/day, last seizure in October 2024: seizure-free for 25 months."""
    pid = "c03-amira"
    return request(name, hook, pid,
        patient=c.patient(pid, "2015-05-02", "female", "Amira", "Haddad"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 38.0, encounter=f"{pid}-enc5")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 146.0, encounter=f"{pid}-enc5")],
        labs=[c.creatinine(f"{pid}-cr", pid, "2026-05-05", 46.0, "umol/L")],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2022-02-15",
                                note="BECT; no seizure for 2 years.")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311289", 1, "tablet", per_day=2, authored="2022-03-01")],
        visits=[
            Visit("2024-11-05", 1, True, True, "under-1-min", assessment="stable"),
            Visit("2025-05-06", 0, False, False, "none", assessment="improved"),
            Visit("2025-11-04", 0, False, False, "none", assessment="stable"),
            Visit("2026-05-05", 0, False, False, "none", assessment="stable"),
            Visit("2026-12-01", 0, False, False, "none", assessment="stable", reason="44145005",
                  note="Seizure-free for 25 months on levetiracetam 500 mg twice daily. "
                       "Parents ask about stopping."),
        ],
        draft=draft, expect=expect)


def c03_seizure_free_2_years_taper_offered() -> dict[str, Any]:
    return _amira("c03", "patient-view", None, {
        "action": ["taper", "keep"], "cards": "one", "rules": ["R-NO-INCREASE-SEIZURE-FREE", "R-WITHDRAWAL-OFFERED"], "current_mg_per_day": 1000,
        "max_mg_per_day": MAX_4_TO_16_YEARS * 38.0, "recommended": {"max": 1000},
        "cites": ["seizure-free"],
        "why": "Seizure-free for 2 years on 1000 mg/day: withdrawal is offered (not imposed), never an increase "
               "(domain.md §4, §6: remission usually 1–3 y after onset; consider withdrawal after 1–2 y)."})


def c04_seizure_free_2_years_taper_draft_on_sign() -> dict[str, Any]:
    pid = "c03-amira"
    taper = c.lev_order(f"{pid}-taper", pid, "311288", 1, "tablet", per_day=2, authored="2026-12-01",
                        encounter=f"{pid}-enc5", days_supply=14)
    return _amira("c04", "order-sign", taper, {
        "action": "taper", "cards": "one", "rules": ["R-NO-INCREASE-SEIZURE-FREE"], "indicator": "info", "current_mg_per_day": 1000,
        "draft_mg_per_day": 500, "max_mg_per_day": MAX_4_TO_16_YEARS * 38.0, "recommended": {"max": 1000},
        "cites": ["Draft 500 mg/day"],
        "why": "A taper draft (1000 → 500 mg/day, −13 mg/kg/day, within the −20 mg/kg/day per 2 weeks the EU "
               "SmPC allows) after 2 years seizure-free is sound: support it (domain.md §2, §6)."})


def c45_seizure_free_2_years_increase_draft_on_sign() -> dict[str, Any]:
    pid = "c03-amira"
    increase = c.lev_order(f"{pid}-increase", pid, "311290", 1, "tablet", per_day=2, authored="2026-12-01",
                           encounter=f"{pid}-enc5")
    return _amira("c45", "order-sign", increase, {
        "action": ["taper", "keep"], "cards": "one", "rules": ["R-NO-INCREASE-SEIZURE-FREE"],
        "indicator": ["warning", "critical"], "current_mg_per_day": 1000, "draft_mg_per_day": 1500,
        "max_mg_per_day": MAX_4_TO_16_YEARS * 38.0, "recommended": {"max": 1000},
        "cites": ["Draft 1500 mg/day", "seizure-free"],
        "why": "The same child seizure-free for 2 years, but the draft raises 1000 → 1500 mg/day: no increase after "
               "≥ 12 months seizure-free; the card warns and offers keep or taper instead (issue rail; domain.md §6)."})


def c05_breakthrough_4_seizures_on_20_mg_kg() -> dict[str, Any]:
    pid = "c05-jonas"
    return request("c05", "patient-view", pid,
        patient=c.patient(pid, "2018-04-11", "male", "Jonas", "Weber"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 25.0, encounter=f"{pid}-enc3")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 128.0, encounter=f"{pid}-enc3")],
        labs=[c.creatinine(f"{pid}-cr", pid, "2026-03-03", 0.41)],
        conditions=[
            c.condition(f"{pid}-bect", pid, "44145005", onset="2025-10-01"),
            c.condition(f"{pid}-sz", pid, "R56.9", onset="2026-10-18", category="encounter-diagnosis",
                        encounter=f"{pid}-ed", status="resolved", note="Seen in ED after a 2-minute nocturnal seizure."),
        ],
        medications=[c.lev_order(f"{pid}-lev", pid, "311288", 1, "tablet", per_day=2, authored="2026-01-06")],
        visits=[
            Visit("2026-03-03", 1, True, True, "under-1-min", assessment="improved"),
            Visit("2026-09-01", 0, False, True, "none", assessment="improved"),
            Visit("2026-12-01", 4, True, True, "1-to-5-min", assessment="worse", reason="91175000",
                  note="4 nocturnal seizures since the last visit 3 months ago, the longest 2 minutes (ED visit 6 weeks ago). "
                       "Adherent to levetiracetam 250 mg twice daily (20 mg/kg/day)."),
        ],
        extra_encounters=[c.encounter(f"{pid}-ed", pid, "2026-10-18", reason="R56.9", kind="EMER",
                                      service="Paediatric emergency")],
        expect={"action": "raise", "cards": "one", "step_mg_per_day": STEP_PER_KG * 25.0, "absent": ["below range"], "rules": ["R-NO-DECREASE-WHILE-SEIZING"], "current_mg_per_day": 500,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 25.0, "recommended": {"min": 501, "max": 1500},
                "form": "tablet", "cites": ["4 seizures", "20 mg/kg/day"],
                "why": "4 breakthrough seizures in 3 months on the starting dose of 20 mg/kg/day: titrate up "
                       "(+20 mg/kg/day per 2 weeks) within 60 mg/kg/day (domain.md §2, §6)."})


def c06_single_lifetime_seizure_never_treated() -> dict[str, Any]:
    pid = "c06-noah"
    return request("c06", "patient-view", pid,
        patient=c.patient(pid, "2019-08-30", "male", "Noah", "Kim"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 23.0, encounter=f"{pid}-enc1")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 122.0, encounter=f"{pid}-enc1")],
        labs=[],
        conditions=[
            c.condition(f"{pid}-single", pid, "703151001", onset="2026-10-05",
                        note="One nocturnal focal seizure with hemifacial twitching, 2 minutes. EEG: centrotemporal spikes."),
            c.condition(f"{pid}-sz", pid, "91175000", onset="2026-10-05", category="encounter-diagnosis",
                        encounter=f"{pid}-ed", status="resolved"),
        ],
        medications=[],
        visits=[Visit("2026-12-01", 1, True, True, "1-to-5-min", assessment="stable", reason="703151001",
                      note="First neurology visit after a single nocturnal seizure 8 weeks ago; none since. "
                           "Discussed watchful waiting with the parents.")],
        extra_encounters=[c.encounter(f"{pid}-ed", pid, "2026-10-05", reason="91175000", kind="EMER",
                                      service="Paediatric emergency")],
        expect={"action": "none", "cards": "one", "rules": ["R-NO-START-AFTER-SINGLE-SEIZURE"], "current_mg_per_day": 0, "cites": ["watchful waiting"],
                "absent": ["taper"],
                "why": "About 10% of children with BECT have a single seizure; no daily medicine after one seizure "
                       "(watchful waiting, treatment as the alternative) (domain.md §4, §6; ILAE 2022)."})


def c07_never_treated_seizure_free() -> dict[str, Any]:
    pid = "c07-sofia"
    return request("c07", "patient-view", pid,
        patient=c.patient(pid, "2017-03-14", "female", "Sofia", "Rossi"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 30.0, encounter=f"{pid}-enc5")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 136.0, encounter=f"{pid}-enc5")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2024-09-08",
                                note="Two brief nocturnal seizures 2 years ago, 2 months apart; family chose no medication.")],
        medications=[],
        visits=[
            Visit("2024-11-20", 2, True, True, "under-1-min", assessment="stable"),
            Visit("2025-06-03", 0, False, False, "none", assessment="improved"),
            Visit("2025-12-02", 0, False, False, "none", assessment="stable"),
            Visit("2026-06-02", 0, False, False, "none", assessment="stable"),
            Visit("2026-12-01", 0, False, False, "none", assessment="stable", reason="44145005",
                  note="Seizure-free for 2 years, never treated."),
        ],
        expect={"action": "none", "cards": "one", "current_mg_per_day": 0, "cites": ["seizure-free"],
                "absent": ["taper"],
                "why": "Never treated and seizure-free for 2 years: nothing to start, and no 'taper' for a child "
                       "who takes nothing (domain.md §6)."})


def c08_level_60_with_somnolence() -> dict[str, Any]:
    pid = "c08-ethan"
    return request("c08", "patient-view", pid,
        patient=c.patient(pid, "2016-02-19", "male", "Ethan", "Clarke"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 32.0, encounter=f"{pid}-enc3")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 140.0, encounter=f"{pid}-enc3")],
        labs=[c.lev_level(f"{pid}-lev-level", pid, "2026-11-28", 60.0, "mg/L",
                          note="Trough, drawn before the morning dose."),
              c.creatinine(f"{pid}-cr", pid, "2026-11-28", 0.52)],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2025-08-14")],
        medications=[
            c.lev_order(f"{pid}-lev2", pid, "311290", 1, "tablet", per_day=2, authored="2026-05-26"),
            c.lev_order(f"{pid}-lev1", pid, "311289", 1, "tablet", per_day=2, authored="2025-09-02",
                        status="stopped", end="2026-05-25"),
        ],
        visits=[
            Visit("2026-06-02", 2, True, True, "under-1-min", assessment="worse"),
            Visit("2026-09-01", 0, False, True, "none", assessment="improved", adverse_effect=False),
            Visit("2026-12-01", 0, False, False, "none", exam="fair", assessment="stable", adverse_effect=True,
                  reason="44145005",
                  note="Seizure-free for 6 months. Teachers report daytime somnolence; falls asleep in class. "
                       "Levetiracetam trough 60 mg/L."),
        ],
        expect={"action": "lower", "cards": "one", "step_mg_per_day": STEP_PER_KG * 32.0, "rules": ["R-NO-INCREASE-HIGH-LEVEL"], "current_mg_per_day": 1500,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 32.0, "recommended": {"max": 1499}, "form": "tablet",
                "cites": ["60 mg/L"],
                "why": "Somnolence with a trough of 60 mg/L, above the 12–46 mg/L reference, seizure-free 6 months: "
                       "reduce (domain.md §3 reference range, §6)."})


def c09_adverse_effects_with_normal_level() -> dict[str, Any]:
    pid = "c09-maya"
    return request("c09", "patient-view", pid,
        patient=c.patient(pid, "2018-06-25", "female", "Maya", "Johnson"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 57.3, "[lb_av]", encounter=f"{pid}-enc3")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 127.0, encounter=f"{pid}-enc3")],
        labs=[c.lev_level(f"{pid}-lev-level", pid, "2026-11-24", 22.0, "mg/L", note="Trough."),
              c.creatinine(f"{pid}-cr", pid, "2026-11-24", 0.44)],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2025-04-19")],
        medications=[
            c.lev_order(f"{pid}-lev2", pid, "311289", 1, "tablet", per_day=2, authored="2025-11-04"),
            c.lev_order(f"{pid}-lev1", pid, "311288", 1, "tablet", per_day=2, authored="2025-05-06",
                        status="completed", end="2025-11-03"),
        ],
        visits=[
            Visit("2026-06-02", 1, True, True, "under-1-min", assessment="stable", adverse_effect=False),
            Visit("2026-09-01", 0, False, True, "none", assessment="improved", adverse_effect=True),
            Visit("2026-12-01", 0, False, False, "none", assessment="stable", adverse_effect=True, reason="44145005",
                  note="No seizure for 6 months. Irritable and aggressive at home and school since the increase to "
                       "500 mg twice daily; trough level 22 mg/L."),
        ],
        expect={"action": ["keep", "lower"], "cards": "one", "current_mg_per_day": 1000,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 57.3 * LB_KG, "recommended": {"max": 1000}, "form": "tablet",
                "cites": ["22 mg/L"],
                "why": "Irritability and aggression (7 vs 1%, 10 vs 5% on LEV vs placebo) with a typical level and "
                       "seizure control: no increase; keep or reduce (domain.md §4: dose relation weak)."})


def c10_new_diagnosis_3_seizures_start() -> dict[str, Any]:
    pid = "c10-liam"
    return request("c10", "patient-view", pid,
        patient=c.patient(pid, "2019-05-17", "male", "Liam", "O'Connor"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 24.0, encounter=f"{pid}-enc1")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 124.0, encounter=f"{pid}-enc1")],
        labs=[c.creatinine(f"{pid}-cr", pid, "2026-09-12", 0.40)],
        conditions=[
            c.condition(f"{pid}-bect", pid, "44145005", onset="2026-09-12", recorded="2026-12-01",
                        note="EEG last month: bilateral centrotemporal spikes, activated in sleep."),
            c.condition(f"{pid}-sz", pid, "91175000", onset="2026-09-12", category="encounter-diagnosis",
                        encounter=f"{pid}-ed", status="resolved"),
        ],
        medications=[],
        visits=[Visit("2026-12-01", 3, True, True, "1-to-5-min", assessment="worse", reason="44145005",
                      note="3 seizures in the last 11 weeks, one in daytime at school with secondary "
                           "generalisation, 3 minutes. Parents wish to start treatment.")],
        extra_encounters=[c.encounter(f"{pid}-ed", pid, "2026-09-12", reason="91175000", kind="EMER",
                                      service="Paediatric emergency")],
        expect={"action": "start", "cards": "one", "rules": ["R-START-AT-LABEL-DOSE"], "current_mg_per_day": 0,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 24.0, "recommended": {"min": 20 * 24.0, "max": 30 * 24.0},
                "form": "tablet", "cites": ["3 seizures", "starting dose"],
                "why": "New BECT with 3 seizures, one daytime and generalised: treat, starting at the label's "
                       "10 mg/kg twice daily = 20 mg/kg/day (domain.md §2, §6)."})


def c11_infant_4_months_solution() -> dict[str, Any]:
    pid = "c11-aiyana"
    infant_order = c.lev_order(f"{pid}-lev", pid, "403884", 0.5, "mL", per_day=2, authored="2026-09-10",
                               contained=True)
    return request("c11", "patient-view", pid,
        patient=c.patient(pid, "2026-07-20", "female", "Aiyana", "Begay"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 6.5, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 63.0, encounter=f"{pid}-enc2")],
        labs=[],
        conditions=[c.condition(f"{pid}-epi", pid, "84757009", onset="2026-09-02",
                                note="Focal seizures from 6 weeks of age; MRI normal.")],
        medications=[infant_order],
        visits=[
            Visit("2026-10-08", 2, True, True, "under-1-min", assessment="stable"),
            Visit("2026-12-01", 3, True, True, "under-1-min", assessment="worse", reason="84757009",
                  note="3 focal seizures in 7 weeks on levetiracetam oral solution 0.5 mL (50 mg) twice daily."),
        ],
        expect={"action": ["raise", "no-recommendation"], "cards": "one", "step_mg_per_day": STEP_PER_KG_BELOW_6_MONTHS * 6.5, "current_mg_per_day": 100,
                "max_mg_per_day": MAX_1_TO_6_MONTHS * 6.5, "form": "solution", "cites": ["atypical", "7 mg/kg"],
                "why": "4-month-old: the 1–6 month label band (at most 21 mg/kg BID = 273 mg/day) in oral solution; "
                       "titrated by its own step, +7 mg/kg BID every 2 weeks; far outside BECT ages (onset 4–10 y in "
                       "90%), so said atypical (domain.md §2, §4)."})


def c12_toddler_2_years_solution() -> dict[str, Any]:
    pid = "c12-kai"
    return request("c12", "patient-view", pid,
        patient=c.patient(pid, "2024-06-10", "male", "Kai", "Nakamura"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 13.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 90.0, encounter=f"{pid}-enc2")],
        labs=[],
        conditions=[c.condition(f"{pid}-sd", pid, "128613002", onset="2025-12-01")],
        medications=[c.lev_order(f"{pid}-lev", pid, "403884", 1.3, "mL", per_day=2, authored="2026-06-15")],
        visits=[
            Visit("2026-09-01", 1, True, True, "under-1-min", assessment="stable"),
            Visit("2026-12-01", 2, True, True, "1-to-5-min", assessment="worse", reason="128613002",
                  note="2 seizures since the last visit 3 months ago on 1.3 mL (130 mg) twice daily."),
        ],
        expect={"action": "raise", "cards": "one", "step_mg_per_day": STEP_PER_KG * 13.0, "rules": ["R-NO-DECREASE-WHILE-SEIZING"], "current_mg_per_day": 260,
                "max_mg_per_day": MAX_6_MONTHS_TO_4_YEARS * 13.0, "recommended": {"min": 261, "max": 650},
                "form": "solution", "cites": ["atypical"],
                "why": "2½ years, 13 kg, seizing on 20 mg/kg/day: titrate within the 6 months–4 years band "
                       "(25 mg/kg BID = 650 mg/day), solution at ≤ 20 kg; atypical age for BECT (domain.md §2, §4)."})


def c13_controlled_on_solution_keep() -> dict[str, Any]:
    pid = "c13-ella"
    return request("c13", "patient-view", pid,
        patient=c.patient(pid, "2021-08-03", "female", "Ella", "Schmidt"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 19.0, encounter=f"{pid}-enc3")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 110.0, encounter=f"{pid}-enc3")],
        labs=[c.creatinine(f"{pid}-cr", pid, "2026-07-07", 0.35)],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2025-12-15")],
        medications=[
            c.lev_order(f"{pid}-lev2", pid, "403884", 2.5, "mL", per_day=2, authored="2026-04-07"),
            c.lev_order(f"{pid}-lev1", pid, "403884", 1.9, "mL", per_day=2, authored="2026-01-13",
                        status="completed", end="2026-04-06"),
        ],
        visits=[
            Visit("2026-07-07", 1, True, True, "under-1-min", assessment="improved"),
            Visit("2026-10-06", 0, False, True, "none", assessment="improved"),
            Visit("2026-12-01", 0, False, True, "none", assessment="stable", reason="44145005",
                  note="No seizure for 5 months on 2.5 mL (250 mg) twice daily. Well, no side effects."),
        ],
        expect={"action": "keep", "cards": "one", "absent": ["below range"], "current_mg_per_day": 500,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 19.0, "recommended": {"min": 500, "max": 500},
                "form": "solution", "cites": ["500 mg/day", "26 mg/kg/day"],
                "why": "5 years, 19 kg, seizure-free 5 months on 26 mg/kg/day without side effects: keep; oral "
                       "solution at ≤ 20 kg (domain.md §2, §6)."})


def c14_sixteen_years_seizure_free_taper() -> dict[str, Any]:
    pid = "c14-daniel"
    return request("c14", "patient-view", pid,
        patient=c.patient(pid, "2010-04-02", "male", "Daniel", "Okafor"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 61.0, encounter=f"{pid}-enc4")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 172.0, encounter=f"{pid}-enc4")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2018-05-21")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311289", 1, "tablet", per_day=2, authored="2018-06-12")],
        visits=[
            Visit("2023-09-26", 1, True, True, "under-1-min", assessment="stable"),
            Visit("2024-12-03", 0, False, False, "none", assessment="stable"),
            Visit("2025-12-02", 0, False, False, "none", assessment="stable"),
            Visit("2026-12-01", 0, False, False, "none", assessment="stable", reason="44145005",
                  note="Seizure-free for 3 years. Asks whether he can stop before driving lessons."),
        ],
        expect={"action": ["taper", "keep"], "cards": "one", "rules": ["R-NO-INCREASE-SEIZURE-FREE", "R-WITHDRAWAL-OFFERED"], "current_mg_per_day": 1000,
                "max_mg_per_day": ABSOLUTE_MAX, "recommended": {"max": 1000}, "cites": ["seizure-free"],
                "why": "16½ years, seizure-free 3 years: remission nearly always by 15–16 y; withdrawal is offered, "
                       "an increase never (domain.md §4, §6)."})


def c15_seventeen_years_still_seizing() -> dict[str, Any]:
    pid = "c15-chloe"
    return request("c15", "patient-view", pid,
        patient=c.patient(pid, "2009-08-15", "female", "Chloe", "Martin"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 58.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 165.0, encounter=f"{pid}-enc2")],
        labs=[],
        conditions=[c.condition(f"{pid}-dx", pid, "G40.009", onset="2016-10-03", category="encounter-diagnosis")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311289", 1, "tablet", per_day=2, authored="2024-03-05")],
        visits=[
            Visit("2026-06-02", 1, True, True, "under-1-min", assessment="stable"),
            Visit("2026-12-01", 2, True, True, "1-to-5-min", assessment="worse", reason="G40.009",
                  note="2 focal seizures in the last 3 months, one on waking. Adherent."),
        ],
        expect={"action": "raise", "cards": "one", "step_mg_per_day": STEP_ADULT, "rules": ["R-NO-DECREASE-WHILE-SEIZING"], "current_mg_per_day": 1000,
                "max_mg_per_day": ABSOLUTE_MAX, "recommended": {"min": 1001, "max": 3000}, "form": "tablet",
                "cites": ["atypical"],
                "why": "17 years, seizing on 1000 mg/day: adult label (+500 mg BID every 2 weeks, up to 1500 mg BID); "
                       "seizures past 16 are atypical for BECT (domain.md §2, §4)."})


def c16_adult_epilepsy_on_levetiracetam() -> dict[str, Any]:
    pid = "c16-robert"
    return request("c16", "patient-view", pid,
        patient=c.patient(pid, "1992-03-09", "male", "Robert", "Hughes"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 82.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 180.0, encounter=f"{pid}-enc2")],
        labs=[],
        conditions=[c.condition(f"{pid}-epi", pid, "84757009", onset="2015-02-11")],
        medications=[c.lev_order(f"{pid}-lev", pid, "387003", 1, "tablet", per_day=2, authored="2019-04-16")],
        visits=[
            Visit("2026-06-02", 1, True, True, "under-1-min", assessment="stable"),
            Visit("2026-12-01", 0, False, False, "none", assessment="stable", reason="84757009",
                  note="Seizure-free for 8 months on levetiracetam 1000 mg twice daily."),
        ],
        expect={"action": ["keep", "no-recommendation"], "cards": "one", "current_mg_per_day": 2000,
                "max_mg_per_day": ABSOLUTE_MAX, "recommended": {"max": 2000}, "cites": ["atypical"],
                "why": "An adult with epilepsy on levetiracetam is in scope (a LEV order, an epilepsy diagnosis) but "
                       "far outside BECT ages: the card says the age is atypical (issue scope; domain.md §4)."})


def c17_renal_egfr_64() -> dict[str, Any]:
    pid = "c17-oliver"
    return request("c17", "patient-view", pid,
        patient=c.patient(pid, "2016-09-12", "male", "Oliver", "Brown"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 33.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 140.0, encounter=f"{pid}-enc2")],
        labs=[c.creatinine(f"{pid}-cr", pid, "2026-11-24", 0.90)],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2025-06-30",
                                note="CKD stage 2 after haemolytic uraemic syndrome at 3 years.")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311288", 500, "mg", per_day=2, authored="2026-02-10")],
        visits=[
            Visit("2026-09-01", 1, True, True, "under-1-min", assessment="stable"),
            Visit("2026-12-01", 2, True, True, "under-1-min", assessment="worse", reason="44145005",
                  note="2 nocturnal seizures since the last visit 3 months ago on 500 mg twice daily."),
        ],
        expect={"action": "raise", "cards": "one", "step_mg_per_day": STEP_PER_KG * 33.0, "rules": ["R-NO-DECREASE-WHILE-SEIZING"], "current_mg_per_day": 1000,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 33.0 * RENAL_50_80,
                "recommended": {"min": 1001, "max": MAX_4_TO_16_YEARS * 33.0 * RENAL_50_80}, "form": "tablet",
                "cites": ["eGFR"],
                "why": f"Schwartz eGFR {schwartz(140.0, 0.90):.0f} (50–80): 66% of 60 mg/kg/day = 1307 mg/day; "
                       "seizing on 1000 mg/day, so raise within it (Kinderformularium, domain.md §2)."})


def c18_renal_egfr_40_umol() -> dict[str, Any]:
    pid = "c18-isabella"
    return request("c18", "patient-view", pid,
        patient=c.patient(pid, "2017-11-20", "female", "Isabella", "Garcia"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 28.0, encounter=f"{pid}-enc3")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 130.0, encounter=f"{pid}-enc3")],
        labs=[c.creatinine(f"{pid}-cr", pid, "2026-11-24", 118.0, "umol/L")],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2025-09-09")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311288", 1, "tablet", per_day=2, authored="2025-10-14")],
        visits=[
            Visit("2026-07-07", 1, True, True, "under-1-min", assessment="stable"),
            Visit("2026-10-06", 0, False, True, "none", assessment="improved"),
            Visit("2026-12-01", 0, False, True, "none", assessment="stable", reason="44145005",
                  note="No seizure for 5 months on 250 mg twice daily. Creatinine 118 µmol/L (CKD 3b)."),
        ],
        expect={"action": "keep", "cards": "one", "current_mg_per_day": 500,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 28.0 * RENAL_30_50, "recommended": {"min": 500, "max": 500},
                "cites": ["eGFR"],
                "why": f"118 µmol/L = 1.33 mg/dL, Schwartz eGFR {schwartz(130.0, 118.0 / 88.42):.0f} (30–50): 50% of "
                       "the maximum (840 mg/day); seizure-free 5 months on 500 mg/day: keep (domain.md §2)."})


def c19_renal_egfr_20_dose_above_renal_maximum() -> dict[str, Any]:
    pid = "c19-lucas"
    return request("c19", "patient-view", pid,
        patient=c.patient(pid, "2014-07-30", "male", "Lucas", "Silva"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 40.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 150.0, encounter=f"{pid}-enc2")],
        labs=[c.creatinine(f"{pid}-cr", pid, "2026-11-24", 3.1)],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2023-05-02",
                                note="Progressive CKD (renal dysplasia), now stage 4.")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311289", 1, "tablet", per_day=2, authored="2024-01-09")],
        visits=[
            Visit("2026-06-02", 0, False, False, "none", assessment="stable"),
            Visit("2026-12-01", 0, False, False, "none", assessment="stable", reason="44145005",
                  note="Seizure-free; renal function has declined (creatinine 3.1 mg/dL)."),
        ],
        expect={"action": "lower", "cards": "one", "step_mg_per_day": STEP_PER_KG * 40.0, "current_mg_per_day": 1000,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 40.0 * RENAL_10_30,
                "recommended": {"max": MAX_4_TO_16_YEARS * 40.0 * RENAL_10_30}, "cites": ["eGFR"],
                "why": f"Schwartz eGFR {schwartz(150.0, 3.1):.0f} (10–30): 33% of 60 mg/kg/day = 792 mg/day, below the "
                       "1000 mg/day he takes: lower (Kinderformularium, domain.md §2)."})


def c20_renal_egfr_below_10_specialist() -> dict[str, Any]:
    pid = "c20-zara"
    return request("c20", "patient-view", pid,
        patient=c.patient(pid, "2015-01-11", "female", "Zara", "Ahmed"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 36.0, encounter=f"{pid}-enc1")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 145.0, encounter=f"{pid}-enc1")],
        labs=[c.creatinine(f"{pid}-cr", pid, "2026-11-30", 663.0, "umol/L")],
        conditions=[c.condition(f"{pid}-epi", pid, "84757009", onset="2022-08-19",
                                note="End-stage kidney disease on haemodialysis three times a week.")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311288", 1, "tablet", per_day=2, authored="2025-02-04")],
        visits=[Visit("2026-12-01", 1, True, True, "under-1-min", assessment="stable", reason="84757009")],
        expect={"action": "no-recommendation", "cards": "one", "current_mg_per_day": 500, "cites": ["specialist"],
                "why": f"663 µmol/L = 7.5 mg/dL, Schwartz eGFR {schwartz(145.0, 663.0 / 88.42):.0f} (< 10, on dialysis): "
                       "dialysis dosing is a specialist decision, no dose (domain.md §2)."})


def _on_lev_child(pid: str, birth: str, gender: str, given: str, family: str, kg: float | None, cm: float,
                  weight_day: str = "2026-12-01", weight_subject: str | None = None) -> dict[str, Any]:
    """The common chart of a school-age child with BECT on 250 mg twice daily, seizing last quarter."""
    weights = None
    if kg is not None:
        weights = [c.weight(f"{pid}-wt", weight_subject or pid, weight_day, kg,
                            encounter=f"{pid}-enc2" if weight_day == "2026-12-01" and not weight_subject else None)]
    return {
        "patient": c.patient(pid, birth, gender, given, family), "weights": weights,
        "heights": [c.height(f"{pid}-ht", pid, weight_day, cm)],
        "labs": [], "conditions": [c.condition(f"{pid}-bect", pid, "44145005", onset="2025-05-12")],
        "medications": [c.lev_order(f"{pid}-lev", pid, "311288", 1, "tablet", per_day=2, authored="2025-06-10")],
        "visits": [Visit("2026-06-02", 0, False, True, "none", assessment="improved"),
                   Visit("2026-12-01", 1, True, True, "under-1-min", assessment="stable", reason="44145005")],
    }


def c21_creatinine_26_mg_dl_implausible() -> dict[str, Any]:
    pid = "c21-henry"
    facts = _on_lev_child(pid, "2017-02-05", "male", "Henry", "Wilson", 29.0, 134.0)
    # 26 "mg/dL": the laboratory's 26 µmol/L (a normal child's value) sent with the wrong unit.
    facts["labs"] = [c.creatinine(f"{pid}-cr", pid, "2026-11-27", 26.0, "mg/dL")]
    return request("c21", "patient-view", pid, **facts, expect={
        "action": "no-recommendation", "cards": "one", "current_mg_per_day": 500, "cites": ["creatinine"],
        "problems": [{"kind": "implausible", "item": "creatinine"}],
        "why": "Creatinine 26 mg/dL (eGFR 2) in a well child is a unit error (26 µmol/L is normal): a data "
               "problem, never a dose on an assumed normal renal function (issue; domain.md §2)."})


def c22_birth_date_0001() -> dict[str, Any]:
    pid = "c22-grace"
    facts = _on_lev_child(pid, "0001-01-01", "female", "Grace", "Lee", 27.0, 131.0)
    return request("c22", "patient-view", pid, **facts, expect={
        "action": "no-recommendation", "cards": "one", "current_mg_per_day": 500, "cites": ["birth"],
        "problems": [{"kind": "implausible", "item": "birth"}],
        "why": "birthDate 0001-01-01 is an EHR placeholder: the age, and so the label band, is unknown; a data "
               "problem, never an adult dose (issue)."})


def c23_missing_weight() -> dict[str, Any]:
    pid = "c23-samuel"
    facts = _on_lev_child(pid, "2018-10-02", "male", "Samuel", "Davis", None, 127.0)
    facts["weights"] = []  # the weight search found nothing
    return request("c23", "patient-view", pid, **facts, expect={
        "action": "no-recommendation", "cards": "one", "current_mg_per_day": 500, "cites": ["weight"],
        "problems": [{"kind": "missing", "item": "weight"}],
        "why": "The label maximum is in mg/kg/day below 16 years: without a body weight no dose (domain.md §2)."})


def c24_weight_older_than_6_months() -> dict[str, Any]:
    pid = "c24-mila"
    facts = _on_lev_child(pid, "2017-12-12", "female", "Mila", "Novak", 27.0, 130.0, weight_day="2026-03-10")
    return request("c24", "patient-view", pid, **facts, expect={
        "action": "no-recommendation", "cards": "one", "current_mg_per_day": 500, "cites": ["weight"], "problems": [{"item": "weight"}],
        "why": "The latest weight is 266 days old; children of 4–10 y gain 2–3 kg a year, so mg/kg would be off "
               "by 5–10%: ask for a current weight (fhir_mapping.dosing MAX_WEIGHT_AGE_DAYS policy)."})


def c25_weight_of_another_patient() -> dict[str, Any]:
    pid = "c25-leo"
    facts = _on_lev_child(pid, "2018-02-14", "male", "Leo", "Hoffmann", 31.0, 129.0,
                          weight_subject="c25-leo-sibling")
    return request("c25", "patient-view", pid, **facts, expect={
        "action": "no-recommendation", "cards": "one", "current_mg_per_day": 500, "cites": ["weight"],
        "problems": [{"kind": "other-patient", "item": "weight"}],
        "why": "The prefetched weight belongs to another patient (a sibling's record): it must be named as "
               "such, neither used nor called merely missing (issue: data problems named precisely)."})


def c26_whole_prefetch_of_another_patient() -> dict[str, Any]:
    pid = "c26-ivy"
    other = "c26-ivy-merged-7731"
    facts = _on_lev_child(other, "2016-08-08", "female", "Ivy", "Chen", 30.0, 135.0)
    chart = request("c26", "patient-view", other, **facts, expect={
        "action": "no-recommendation", "cards": "one",
        "problems": [{"kind": "other-patient", "item": "patient"}],
        "why": "Every prefetched resource is under another patient id than context.patientId (a merged record): "
               "a data problem named as such, no dose for a child whose chart was not sent (issue)."})
    chart["context"]["patientId"] = pid
    return chart


def c27_draft_overdose_on_sign() -> dict[str, Any]:
    pid = "c27-ava"
    overdose = c.lev_order(f"{pid}-draft", pid, "403884", 7.5, "mL", per_day=2, authored="2026-12-01",
                           encounter=f"{pid}-enc2")
    return request("c27", "order-sign", pid,
        patient=c.patient(pid, "2018-09-05", "female", "Ava", "Thompson"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 18.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 118.0, encounter=f"{pid}-enc2")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2026-05-03")],
        medications=[c.lev_order(f"{pid}-lev", pid, "403884", 1.8, "mL", per_day=2, authored="2026-08-04")],
        visits=[
            Visit("2026-09-01", 1, True, True, "under-1-min", assessment="stable"),
            Visit("2026-12-01", 3, True, True, "under-1-min", assessment="worse", reason="44145005",
                  note="3 brief nocturnal seizures since the last visit, all in the last 3 months, on 1.8 mL twice daily."),
        ],
        draft=overdose,
        expect={"action": "raise", "cards": "one", "step_mg_per_day": STEP_PER_KG * 18.0, "rules": ["R-NO-DECREASE-WHILE-SEIZING"], "indicator": "critical", "current_mg_per_day": 360,
                "draft_mg_per_day": 1500, "max_mg_per_day": MAX_4_TO_16_YEARS * 18.0,
                "recommended": {"min": 361, "max": 1080}, "form": "solution",
                "cites": ["Draft 1500 mg/day", "83 mg/kg/day", "exceeds", "1080 mg/day"],
                "why": "Draft 7.5 mL BID = 1500 mg/day = 83 mg/kg/day, above 60 mg/kg/day = 1080 mg/day at 18 kg: "
                       "critical, led by the draft; seizing on 20 mg/kg/day, so raise within it (domain.md §2)."})


def c28_draft_20000_mg_entry_error() -> dict[str, Any]:
    pid = "c28-ben"
    typo = c.lev_order(f"{pid}-draft", pid, "311289", 10000, "mg", per_day=2, authored="2026-12-01",
                       encounter=f"{pid}-enc2")
    return request("c28", "order-sign", pid,
        patient=c.patient(pid, "2016-05-21", "male", "Ben", "Carter"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 30.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 138.0, encounter=f"{pid}-enc2")],
        labs=[c.creatinine(f"{pid}-cr", pid, "2026-09-01", 0.5)],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2024-12-02")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311289", 1, "tablet", per_day=2, authored="2025-03-11")],
        visits=[
            Visit("2026-09-01", 0, False, True, "none", assessment="improved"),
            Visit("2026-12-01", 1, True, True, "under-1-min", assessment="stable", reason="44145005",
                  note="One brief nocturnal seizure since the last visit, last month; otherwise well on 500 mg twice daily."),
        ],
        draft=typo,
        expect={"action": ["raise", "keep"], "cards": "one", "indicator": "critical", "current_mg_per_day": 1000,
                "draft_mg_per_day": 20000, "max_mg_per_day": MAX_4_TO_16_YEARS * 30.0,
                "recommended": {"min": 1000, "max": 1800}, "cites": ["20000 mg/day", "entry error"],
                "why": "10000 mg twice daily = 20000 mg/day is 7× the absolute 3000 mg/day maximum: a likely entry "
                       "error (1000 typed 10000); titration counts from the 1000 mg/day taken (domain.md §2)."})


def c29_draft_equal_to_current_dose() -> dict[str, Any]:
    pid = "c29-nora"
    renewal = c.lev_order(f"{pid}-draft", pid, "311289", 1, "tablet", per_day=2, authored="2026-12-01",
                          encounter=f"{pid}-enc2", days_supply=90)
    return request("c29", "order-sign", pid,
        patient=c.patient(pid, "2017-01-30", "female", "Nora", "Svensson"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 30.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 137.0, encounter=f"{pid}-enc2")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2025-08-01")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311289", 1, "tablet", per_day=2, authored="2025-10-07")],
        visits=[
            Visit("2026-06-02", 1, True, True, "under-1-min", assessment="improved"),
            Visit("2026-12-01", 0, False, False, "none", assessment="stable", reason="44145005",
                  note="Seizure-free for 8 months. Renewing levetiracetam 500 mg twice daily."),
        ],
        draft=renewal,
        expect={"action": "keep", "cards": "one", "indicator": "info", "current_mg_per_day": 1000,
                "draft_mg_per_day": 1000, "max_mg_per_day": MAX_4_TO_16_YEARS * 30.0,
                "recommended": {"min": 1000, "max": 1000}, "cites": ["Draft 1000 mg/day"],
                "why": "A renewal at the dose that controls seizures (8 months seizure-free, 33 mg/kg/day): keep; "
                       "no suggestion may repeat the draft (issue; domain.md §6)."})


def c30_out_of_scope_adult_atrial_fibrillation() -> dict[str, Any]:
    pid = "c30-michael"
    return request("c30", "patient-view", pid,
        patient=c.patient(pid, "1981-06-14", "male", "Michael", "Grant"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 88.0, encounter=f"{pid}-enc1")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 178.0, encounter=f"{pid}-enc1")],
        labs=[c.creatinine(f"{pid}-cr", pid, "2026-11-20", 1.1)],
        conditions=[c.condition(f"{pid}-af", pid, "49436004", onset="2024-02-07")],
        # RxNorm code as the EHR sends it; only "not levetiracetam" matters here (not verified).
        medications=[c.other_order(f"{pid}-apix", pid, "1364445", "apixaban 5 MG Oral Tablet",
                                   "5 mg by mouth twice daily", authored="2024-02-07")],
        visits=[Visit("2026-12-01", None, exam=None, reason="49436004")],
        expect={"cards": "none",
                "why": "45 years, atrial fibrillation, never on levetiracetam, no seizure diagnosis: out of scope; "
                       "EHRs fire patient-view on every chart (issue scope)."})


def c31_out_of_scope_child_with_asthma() -> dict[str, Any]:
    pid = "c31-lily"
    return request("c31", "patient-view", pid,
        patient=c.patient(pid, "2018-03-03", "female", "Lily", "Evans"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 26.0, encounter=f"{pid}-enc1")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 129.0, encounter=f"{pid}-enc1")],
        labs=[],
        conditions=[c.condition(f"{pid}-asthma", pid, "195967001", onset="2022-01-18")],
        # RxNorm code as the EHR sends it; only "not levetiracetam" matters here (not verified).
        medications=[c.other_order(f"{pid}-salb", pid, "745679",
                                   "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
                                   "2 puffs as needed for wheeze", authored="2025-10-02")],
        visits=[Visit("2026-12-01", None, exam=None, reason="195967001")],
        expect={"cards": "none",
                "why": "8 years with asthma, no seizure diagnosis and never a levetiracetam order: out of scope, "
                       "no card (and certainly no 'taper') (issue scope)."})


def c32_extended_release_adolescent_seizing() -> dict[str, Any]:
    pid = "c32-mateo"
    return request("c32", "patient-view", pid,
        patient=c.patient(pid, "2013-10-08", "male", "Mateo", "Lopez"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 48.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 160.0, encounter=f"{pid}-enc2")],
        labs=[c.creatinine(f"{pid}-cr", pid, "2026-06-02", 0.66)],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2022-11-30")],
        medications=[c.lev_order(f"{pid}-lev", pid, "807832", 2, "tablet", per_day=1, authored="2025-12-09")],
        visits=[
            Visit("2026-06-02", 1, True, True, "under-1-min", assessment="stable"),
            Visit("2026-12-01", 3, True, True, "under-1-min", assessment="worse", reason="44145005",
                  note="3 seizures since the last visit 6 months ago, all in the last 3 months, on levetiracetam XR 1000 mg once daily."),
        ],
        expect={"action": "raise", "cards": "one", "step_mg_per_day": STEP_PER_KG * 48.0, "rules": ["R-NO-DECREASE-WHILE-SEIZING"], "current_mg_per_day": 1000,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 48.0, "recommended": {"min": 1001, "max": 2880},
                "form": "tablet", "cites": ["3 seizures", "21 mg/kg/day"],
                "why": "13 years, 48 kg, 3 seizures in 3 months on XR 1000 mg once daily (21 mg/kg/day): raise within "
                       "60 mg/kg/day = 2880 mg/day (XR once daily from 12 y; domain.md §2)."})


def c33_pounds_contained_medication_seizure_free_14_months() -> dict[str, Any]:
    pid = "c33-hannah"
    return request("c33", "patient-view", pid,
        patient=c.patient(pid, "2016-11-22", "female", "Hannah", "Fischer"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 66.0, "[lb_av]", encounter=f"{pid}-enc3")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 137.0, encounter=f"{pid}-enc3")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2024-07-19")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311288", 500, "mg", per_day=2, authored="2024-09-03",
                                 contained=True)],
        visits=[
            Visit("2025-10-07", 1, True, True, "under-1-min", assessment="stable"),
            Visit("2026-04-07", 0, False, False, "none", assessment="improved"),
            Visit("2026-12-01", 0, False, False, "none", assessment="stable", reason="44145005",
                  note="Seizure-free for 14 months on 500 mg twice daily. Weight 66 lb."),
        ],
        expect={"action": ["keep", "taper"], "cards": "one", "rules": ["R-NO-INCREASE-SEIZURE-FREE"], "current_mg_per_day": 1000,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 66.0 * LB_KG, "recommended": {"max": 1000},
                "cites": ["1000 mg/day", "33 mg/kg/day"],
                "why": "66 lb = 29.9 kg, 33 mg/kg/day, seizure-free 14 months: no increase after ≥ 12 months "
                       "seizure-free (issue rail; domain.md §6)."})


def c34_recurrence_after_withdrawal() -> dict[str, Any]:
    pid = "c34-ruby"
    return request("c34", "patient-view", pid,
        patient=c.patient(pid, "2014-12-19", "female", "Ruby", "Walker"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 41.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 150.0, encounter=f"{pid}-enc2")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2021-06-08"),
                    c.condition(f"{pid}-sz", pid, "91175000", onset="2026-11-08", category="encounter-diagnosis",
                                encounter=f"{pid}-enc2", status="resolved")],
        medications=[
            c.lev_order(f"{pid}-lev2", pid, "311288", 1, "tablet", per_day=2, authored="2026-03-03",
                        status="stopped", end="2026-04-14"),
            c.lev_order(f"{pid}-lev1", pid, "311289", 1, "tablet", per_day=2, authored="2021-07-06",
                        status="completed", end="2026-03-02"),
        ],
        visits=[
            Visit("2026-04-14", 0, False, False, "none", assessment="stable",
                  note="Levetiracetam stopped after taper; seizure-free 2½ years."),
            Visit("2026-12-01", 1, True, True, "under-1-min", assessment="stable", reason="91175000",
                  note="One brief nocturnal seizure 3 weeks ago, 7 months after stopping levetiracetam."),
        ],
        expect={"action": ["start", "none"], "cards": "one", "current_mg_per_day": 0,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 41.0, "recommended": {"min": 20 * 41.0},
                "absent": ["taper", "single seizure"],
                "why": "Off levetiracetam since April (stopped order), one recurrence after 5 years of BECT: restart "
                       "at ≥ the label start or watch; nothing to taper; a child with an epilepsy diagnosis has had "
                       "more than a 'single seizure' (ILAE practical definition, Fisher 2014; domain.md §2, §6)."})


def c35_level_in_ug_ml_seizing() -> dict[str, Any]:
    pid = "c35-adam"
    return request("c35", "patient-view", pid,
        patient=c.patient(pid, "2012-09-03", "male", "Adam", "Novak"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 52.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 165.0, encounter=f"{pid}-enc2")],
        labs=[c.lev_level(f"{pid}-lev-level", pid, "2026-11-20", 18.0, "ug/mL", note="Trough."),
              c.creatinine(f"{pid}-cr", pid, "2026-11-20", 0.7)],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2023-03-14")],
        medications=[
            c.lev_order(f"{pid}-lev2", pid, "311290", 1, "tablet", per_day=2, authored="2026-02-17"),
            c.lev_order(f"{pid}-lev1", pid, "311289", 1, "tablet", per_day=2, authored="2025-04-08",
                        status="completed", end="2026-02-16"),
        ],
        visits=[
            Visit("2026-06-02", 1, True, True, "under-1-min", assessment="stable"),
            Visit("2026-12-01", 2, True, True, "under-1-min", assessment="worse", reason="44145005",
                  note="2 seizures in the last 3 months on 750 mg twice daily; trough 18 µg/mL."),
        ],
        expect={"action": "raise", "cards": "one", "step_mg_per_day": STEP_ADULT, "rules": ["R-NO-DECREASE-WHILE-SEIZING"], "current_mg_per_day": 1500,
                "max_mg_per_day": ABSOLUTE_MAX, "recommended": {"min": 1501, "max": 3000}, "form": "tablet",
                "cites": ["2 seizures", "18 mg/L"],
                "why": "14 years, 52 kg, seizing on 29 mg/kg/day with a trough of 18 µg/mL (= mg/L, mid-reference): "
                       "room to raise within 3000 mg/day; the measured level is shown (domain.md §2, §3)."})


def c36_order_select_start_new_diagnosis() -> dict[str, Any]:
    pid = "c36-priya"
    start = c.lev_order(f"{pid}-draft", pid, "311288", 1, "tablet", per_day=2, authored="2026-12-01",
                        encounter=f"{pid}-enc1")
    return request("c36", "order-select", pid,
        patient=c.patient(pid, "2019-03-28", "female", "Priya", "Patel"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 22.0, encounter=f"{pid}-enc1")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 120.0, encounter=f"{pid}-enc1")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2026-10-01", recorded="2026-12-01")],
        medications=[],
        visits=[Visit("2026-12-01", 4, True, True, "1-to-5-min", assessment="worse", reason="44145005",
                      note="4 seizures in 2 months, one daytime. Starting levetiracetam.")],
        draft=start,
        expect={"action": "start", "cards": "one", "rules": ["R-START-AT-LABEL-DOSE"], "indicator": "info", "current_mg_per_day": 0,
                "draft_mg_per_day": 500, "max_mg_per_day": MAX_4_TO_16_YEARS * 22.0,
                "recommended": {"min": 20 * 22.0, "max": 30 * 22.0}, "form": "tablet",
                "cites": ["Draft 500 mg/day"],
                "why": "A start draft of 250 mg BID = 23 mg/kg/day for a new diagnosis with 4 seizures is the label's "
                       "starting dose (10 mg/kg BID) in whole tablets: agree (domain.md §2)."})


def c37_order_sign_for_another_medicine() -> dict[str, Any]:
    pid = "c37-felix"
    facts = _on_lev_child(pid, "2017-06-06", "male", "Felix", "Braun", 28.0, 132.0)
    facts["conditions"].append(c.condition(f"{pid}-aom", pid, "65363002", onset="2026-11-29",
                                           category="encounter-diagnosis"))
    # RxNorm code as the EHR sends it; only "not levetiracetam" matters here (not verified).
    antibiotic = c.other_order(f"{pid}-draft", pid, "308182", "amoxicillin 250 MG Oral Capsule",
                               "500 mg by mouth three times daily for 7 days", authored="2026-12-01")
    return request("c37", "order-sign", pid, **facts, draft=antibiotic, expect={
        "cards": "none",
        "why": "An amoxicillin draft for otitis media in a child with BECT: nothing about levetiracetam to say."})


def c38_sandbox_shaped_raise_draft_on_select() -> dict[str, Any]:
    pid = "c38-omar"
    raise_draft = c.lev_order(f"{pid}-draft", pid, "311289", 1, "tablet", per_day=2, authored="2026-12-01",
                              encounter=f"{pid}-enc2")
    return request("c38", "order-select", pid,
        patient=c.patient(pid, "2016-03-22", "male", "Omar", "Farouk"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 35.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 142.0, encounter=f"{pid}-enc2")],
        labs=[c.creatinine(f"{pid}-cr", pid, "2026-09-01", 0.55)],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2025-02-10")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311288", 1, "tablet", per_day=2, authored="2025-04-15")],
        visits=[
            Visit("2026-09-01", 0, False, True, "none", assessment="improved"),
            Visit("2026-12-01", 2, True, True, "under-1-min", assessment="worse", reason="44145005",
                  note="2 nocturnal seizures since the last visit 3 months ago on 250 mg twice daily. Increasing to 500 mg twice daily."),
        ],
        draft=raise_draft, sandbox=True,
        expect={"action": "raise", "cards": "one", "step_mg_per_day": STEP_PER_KG * 35.0, "rules": ["R-NO-DECREASE-WHILE-SEIZING"], "indicator": "info",
                "current_mg_per_day": 500, "draft_mg_per_day": 1000, "max_mg_per_day": MAX_4_TO_16_YEARS * 35.0,
                "recommended": {"min": 501, "max": MAX_4_TO_16_YEARS * 35.0}, "cites": ["Draft 1000 mg/day"],
                "why": "Sandbox-shaped draft (no Bundle type, category object, {pill}): 1 × 500 mg BID = 1000 mg/day = "
                       "29 mg/kg/day, one label step (+20 mg/kg/day) up for breakthrough seizures: agree (domain.md §2)."})


def c39_on_levetiracetam_without_a_coded_diagnosis() -> dict[str, Any]:
    pid = "c39-theo"
    return request("c39", "patient-view", pid,
        patient=c.patient(pid, "2017-04-09", "male", "Theo", "Lambert"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 29.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 133.0, encounter=f"{pid}-enc2")],
        labs=[],
        conditions=[],  # the problem list was never filled in: only the order says why he is seen
        medications=[c.lev_order(f"{pid}-lev", pid, "311288", 1, "tablet", per_day=2, authored="2025-11-18")],
        visits=[
            Visit("2026-06-02", 0, False, False, "none", assessment="stable"),
            Visit("2026-12-01", 0, False, False, "none", assessment="stable",
                  note="Rolandic epilepsy, seizure-free for a year on 250 mg twice daily."),
        ],
        expect={"action": ["keep", "taper"], "cards": "one", "current_mg_per_day": 500,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 29.0, "recommended": {"max": 500},
                "why": "No coded diagnosis but a levetiracetam order: in scope by the order (issue scope); seizure-"
                       "free for a year on 17 mg/kg/day: keep (withdrawal may be discussed) (domain.md §6)."})


def c40_first_seizure_coded_r56_9_only() -> dict[str, Any]:
    pid = "c40-elif"
    return request("c40", "patient-view", pid,
        patient=c.patient(pid, "2020-01-27", "female", "Elif", "Yilmaz"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 21.0, encounter=f"{pid}-enc1")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 117.0, encounter=f"{pid}-enc1")],
        labs=[c.creatinine(f"{pid}-cr", pid, "2026-11-10", 0.38)],
        conditions=[c.condition(f"{pid}-conv", pid, "R56.9", onset="2026-11-10", category="encounter-diagnosis",
                                encounter=f"{pid}-ed", status="resolved",
                                note="Afebrile nocturnal convulsion, 2 minutes; normal examination.")],
        medications=[],
        visits=[Visit("2026-12-01", 1, True, True, "1-to-5-min", assessment="stable", reason="R56.9",
                      note="Referred after a first afebrile nocturnal seizure 3 weeks ago; EEG awaited.")],
        extra_encounters=[c.encounter(f"{pid}-ed", pid, "2026-11-10", reason="R56.9", kind="EMER",
                                      service="Paediatric emergency")],
        expect={"action": "none", "cards": "one", "rules": ["R-NO-START-AFTER-SINGLE-SEIZURE"],
                "current_mg_per_day": 0, "cites": ["watchful waiting"], "absent": ["taper"],
                "why": "Only an emergency diagnosis ICD-10-CM R56.9 (in the scope code set) after a first seizure: "
                       "in scope; no treatment after a single seizure (domain.md §5, §6)."})


def c41_low_level_seizing_adherence() -> dict[str, Any]:
    pid = "c41-sara"
    return request("c41", "patient-view", pid,
        patient=c.patient(pid, "2015-10-14", "female", "Sara", "Lindqvist"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 37.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 147.0, encounter=f"{pid}-enc2")],
        labs=[c.lev_level(f"{pid}-lev-level", pid, "2026-11-30", 1.2, "mg/L", note="Trough, before the morning dose."),
              c.creatinine(f"{pid}-cr", pid, "2026-11-30", 0.58)],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2024-03-05")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311290", 1, "tablet", per_day=2, authored="2025-09-16")],
        visits=[
            Visit("2026-09-01", 1, True, True, "under-1-min", assessment="stable"),
            Visit("2026-12-01", 2, True, True, "under-1-min", assessment="worse", reason="44145005",
                  note="2 seizures since the last visit on 750 mg twice daily (41 mg/kg/day). Mother unsure the "
                       "evening dose is taken at her father's house. Trough 1.2 mg/L."),
        ],
        expect={"action": ["keep", "raise"], "cards": "one", "rules": ["R-NO-DECREASE-WHILE-SEIZING"],
                "current_mg_per_day": 1500, "max_mg_per_day": MAX_4_TO_16_YEARS * 37.0,
                "recommended": {"min": 1500, "max": MAX_4_TO_16_YEARS * 37.0}, "step_mg_per_day": STEP_PER_KG * 37.0,
                "cites": ["1.2 mg/L", "adherence"],
                "why": "Seizing on 41 mg/kg/day with a trough of 1.2 mg/L, below the 2–69 mg/L observed in "
                       "children on treatment (Tauzin 2021; Chhun 2009: 20 mg/kg BID → 6–20 mg/L): ask about adherence before raising; never "
                       "lower (domain.md §3, §6)."})


def c42_refuted_epilepsy_never_treated() -> dict[str, Any]:
    pid = "c42-jakob"
    return request("c42", "patient-view", pid,
        patient=c.patient(pid, "2018-01-19", "male", "Jakob", "Nowak"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 27.0, encounter=f"{pid}-enc1")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 130.0, encounter=f"{pid}-enc1")],
        labs=[],
        conditions=[c.condition(f"{pid}-epi", pid, "84757009", onset="2026-09-08", status=None,
                                verification="refuted",
                                note="Events were night terrors; video-EEG normal. Epilepsy refuted.")],
        medications=[],
        visits=[Visit("2026-12-01", None, exam=None, reason="84757009",
                      note="Video-EEG captured three typical events: night terrors, no epileptiform activity.")],
        expect={"cards": "none",
                "why": "The only epilepsy diagnosis is refuted (night terrors on video-EEG) and levetiracetam was "
                       "never ordered: out of scope (issue scope; FHIR R4 Condition.verificationStatus)."})


def c43_remitted_bect_off_levetiracetam() -> dict[str, Any]:
    pid = "c43-clara"
    return request("c43", "patient-view", pid,
        patient=c.patient(pid, "2011-06-30", "female", "Clara", "Dubois"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 54.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 163.0, encounter=f"{pid}-enc2")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2018-02-02", status="resolved",
                                note="Remitted; levetiracetam withdrawn 2023 without recurrence.")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311289", 1, "tablet", per_day=2, authored="2018-03-06",
                                 status="completed", end="2023-05-30")],
        visits=[
            Visit("2025-06-03", 0, False, False, "none", assessment="stable"),
            Visit("2026-12-01", 0, False, False, "none", assessment="stable", reason="44145005",
                  note="Discharge visit: no seizure for over 4 years, off medication for 3½ years."),
        ],
        expect={"action": "none", "cards": "one", "current_mg_per_day": 0, "absent": ["taper"],
                "why": "Remitted BECT, off levetiracetam for 3½ years (completed order), seizure-free: in scope by the "
                       "past order, nothing to start and nothing to taper (domain.md §4, §6)."})


def c44_start_draft_after_a_single_seizure() -> dict[str, Any]:
    pid = "c44-yusuf"
    start = c.lev_order(f"{pid}-draft", pid, "311288", 1, "tablet", per_day=2, authored="2026-12-01",
                        encounter=f"{pid}-enc1")
    return request("c44", "order-sign", pid,
        patient=c.patient(pid, "2018-08-12", "male", "Yusuf", "Demir"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 25.0, encounter=f"{pid}-enc1")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 127.0, encounter=f"{pid}-enc1")],
        labs=[],
        conditions=[c.condition(f"{pid}-single", pid, "703151001", onset="2026-11-02",
                                note="Single nocturnal focal seizure, 90 seconds.")],
        medications=[],
        visits=[Visit("2026-12-01", 1, True, True, "1-to-5-min", assessment="stable", reason="703151001",
                      note="First seizure 4 weeks ago; parents anxious and ask for treatment.")],
        draft=start,
        expect={"action": ["none", "start"], "cards": "one", "current_mg_per_day": 0, "draft_mg_per_day": 500,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 25.0, "recommended": {"min": 20 * 25.0 * 0.95},
                "cites": ["Draft 500 mg/day", "watchful waiting"], "absent": ["taper"],
                "why": "A start draft after a single seizure: say that watchful waiting is the default and treatment "
                       "the alternative at the family's request; the draft itself is the label's starting dose "
                       "(domain.md §2, §6)."})


def c46_single_prolonged_seizure_untreated() -> dict[str, Any]:
    pid = "c46-amara"
    return request("c46", "patient-view", pid,
        patient=c.patient(pid, "2018-02-19", "female", "Amara", "Okafor"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 26.0, encounter=f"{pid}-enc1")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 130.0, encounter=f"{pid}-enc1")],
        labs=[],
        conditions=[
            c.condition(f"{pid}-single", pid, "703151001", onset="2026-11-10",
                        note="Single nocturnal focal seizure with secondary generalisation, about 12 minutes; "
                             "buccal midazolam given by ambulance crew. EEG: centrotemporal spikes."),
            c.condition(f"{pid}-sz", pid, "91175000", onset="2026-11-10", category="encounter-diagnosis",
                        encounter=f"{pid}-ed", status="resolved"),
        ],
        medications=[],
        visits=[Visit("2026-12-01", 1, True, True, "over-5-min", assessment="stable", reason="703151001",
                      note="Seen 3 weeks after a first seizure that lasted about 12 minutes and needed rescue "
                           "medication; none since. Options discussed with the parents.")],
        extra_encounters=[c.encounter(f"{pid}-ed", pid, "2026-11-10", reason="91175000", kind="EMER",
                                      service="Paediatric emergency")],
        expect={"action": "start", "cards": "one", "current_mg_per_day": 0,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 26.0, "recommended": {"min": 20 * 26.0 * 0.95},
                "cites": ["over 5 minutes"], "absent": ["taper"],
                "why": "A single seizure lasting over 5 minutes (prolonged: ILAE time point t1) is a reason to treat "
                       "(domain.md §6): a start at the label's starting dose is offered, watchful waiting the "
                       "alternative."})


def c47_single_seizure_family_requests_treatment() -> dict[str, Any]:
    pid = "c47-lucas"
    return request("c47", "patient-view", pid,
        patient=c.patient(pid, "2017-05-03", "male", "Lucas", "Ferreira"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 32.0, encounter=f"{pid}-enc1")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 138.0, encounter=f"{pid}-enc1")],
        labs=[],
        conditions=[c.condition(f"{pid}-single", pid, "703151001", onset="2026-11-16",
                                note="One nocturnal hemifacial seizure with drooling, about 90 seconds. EEG: centrotemporal spikes.")],
        medications=[],
        visits=[Visit("2026-12-01", 1, True, True, "1-to-5-min", assessment="stable", reason="703151001",
                      note="First seizure two weeks ago, none since. Watchful waiting discussed; parents would like to "
                           "start medication because of an upcoming school trip.")],
        expect={"action": "start", "cards": "one", "current_mg_per_day": 0,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 32.0, "recommended": {"min": 20 * 32.0 * 0.95},
                "cites": ["family asks for treatment"], "absent": ["taper"],
                "why": "After a single seizure watchful waiting is the default, but the family's request is a reason to "
                       "treat (domain.md §6): a start at the label's starting dose is offered."})


# --- EHR-only charts: no project Observation; the seizure history is in Conditions, encounters, notes ---

def _ehr_visit(day: str, note: str | None, reason: str | None = None) -> Visit:
    """A follow-up as an EHR that never heard of epidose holds it: the encounter and the clinician's note."""
    return Visit(day, None, exam=None, reason=reason, note=note)


def c48_ehr_breakthrough_after_seizure_free_year() -> dict[str, Any]:
    pid = "c48-noah"
    return request("c48", "patient-view", pid,
        patient=c.patient(pid, "2017-04-11", "male", "Noah", "Schmidt"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 31.0, encounter=f"{pid}-enc4")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 136.0, encounter=f"{pid}-enc4")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2025-02-14",
                                note="Rolandic epilepsy: nocturnal hemifacial seizures, CTS on EEG.")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311288", 1, "tablet", per_day=2, authored="2025-03-04")],
        visits=[
            _ehr_visit("2025-09-02", "Started Keppra 250 mg bd in March. No seizures since starting. Tolerating well."),
            _ehr_visit("2026-03-03", "Remains seizure free on levetiracetam 250 mg bd. Growing well."),
            _ehr_visit("2026-06-02", "Sz free. School going well. Continue same dose."),
            _ehr_visit("2026-12-01", "Two nocturnal seizures since the last review in June, the most recent 11 days ago "
                                     "(ED attendance). Good adherence per mum, no missed doses.", reason="44145005"),
        ],
        extra_encounters=[c.encounter(f"{pid}-ed", pid, "2026-11-20", reason="R56.9", kind="EMER",
                                      service="Paediatric emergency")],
        expect={"action": "raise", "cards": "one", "current_mg_per_day": 500, "rules": ["R-NO-DECREASE-WHILE-SEIZING"],
                "max_mg_per_day": MAX_4_TO_16_YEARS * 31.0, "recommended": {"min": 501, "max": MAX_4_TO_16_YEARS * 31.0},
                "step_mg_per_day": STEP_PER_KG * 31.0, "absent": ["taper"],
                "why": "Breakthrough seizures on 16 mg/kg/day, below the 20 mg/kg/day starting dose: titrate up within "
                       "the label before changing drug (domain.md §2, §6)."})


def c49_ehr_seizure_free_two_and_a_half_years() -> dict[str, Any]:
    pid = "c49-isla"
    return request("c49", "patient-view", pid,
        patient=c.patient(pid, "2015-08-23", "female", "Isla", "MacLeod"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 38.0, encounter=f"{pid}-enc3")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 146.0, encounter=f"{pid}-enc3")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2023-07-02"),
                    c.condition(f"{pid}-sz", pid, "91175000", onset="2024-06-10", category="encounter-diagnosis",
                                status="resolved")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311289", 1, "tablet", per_day=2, authored="2023-10-05")],
        visits=[
            _ehr_visit("2025-06-03", "Seizure-free for a year on levetiracetam 500 mg twice daily."),
            _ehr_visit("2025-12-02", "No seizures in the last 18 months."),
            _ehr_visit("2026-12-01", "Seizure-free for 2.5 years on Keppra 500 mg bd. Parents keen to come off it; "
                                     "discussed a gradual withdrawal.", reason="44145005"),
        ],
        expect={"action": ["taper", "keep"], "cards": "one", "current_mg_per_day": 1000,
                "rules": ["R-NO-INCREASE-SEIZURE-FREE"], "max_mg_per_day": MAX_4_TO_16_YEARS * 38.0,
                "recommended": {"max": 1000},
                "why": "Seizure-free 2.5 years on 26 mg/kg/day: gradual withdrawal is offered, never an increase "
                       "(domain.md §6: consider withdrawal after 1–2 years seizure-free)."})


def c50_ehr_chinese_new_diagnosis_family_asks() -> dict[str, Any]:
    pid = "c50-hao"
    return request("c50", "patient-view", pid,
        patient=c.patient(pid, "2018-06-30", "male", "Hao", "Zhang"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 26.0, encounter=f"{pid}-enc1")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 128.0, encounter=f"{pid}-enc1")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2026-10-03", recorded="2026-12-01")],
        medications=[],
        visits=[_ehr_visit("2026-12-01", "患儿近2个月夜间发作3次，表现为一侧口角抽动伴流涎，每次约1分钟。"
                                         "脑电图示中央颞区棘波。家长要求药物治疗。", reason="44145005")],
        expect={"action": "start", "cards": "one", "current_mg_per_day": 0, "rules": ["R-START-AT-LABEL-DOSE"],
                "max_mg_per_day": MAX_4_TO_16_YEARS * 26.0, "recommended": {"min": 20 * 26.0 * 0.95, "max": 30 * 26.0},
                "absent": ["taper"],
                "why": "New BECT with 3 seizures in 2 months and the family asking for treatment: start at the label's "
                       "10 mg/kg twice daily (domain.md §2, §6)."})


def c51_ehr_single_seizure_family_prefers_to_wait() -> dict[str, Any]:
    pid = "c51-freya"
    return request("c51", "patient-view", pid,
        patient=c.patient(pid, "2019-01-15", "female", "Freya", "Lindqvist"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 22.0, encounter=f"{pid}-enc1")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 121.0, encounter=f"{pid}-enc1")],
        labs=[],
        conditions=[c.condition(f"{pid}-sz", pid, "91175000", onset="2026-11-03", category="encounter-diagnosis",
                                encounter=f"{pid}-ed", status="resolved",
                                note="Brief nocturnal focal seizure, about a minute, resolved spontaneously.")],
        medications=[],
        visits=[_ehr_visit("2026-12-01", "Single nocturnal seizure 4 weeks ago, none since. EEG: centrotemporal spikes. "
                                         "Discussed options; parents prefer to wait and see.", reason="91175000")],
        extra_encounters=[c.encounter(f"{pid}-ed", pid, "2026-11-03", reason="91175000", kind="EMER",
                                      service="Paediatric emergency")],
        expect={"action": "none", "cards": "one", "current_mg_per_day": 0, "rules": ["R-NO-START-AFTER-SINGLE-SEIZURE"],
                "max_mg_per_day": MAX_4_TO_16_YEARS * 22.0, "absent": ["taper"],
                "why": "One brief seizure and a family that prefers to wait: watchful waiting (domain.md §6)."})


def c52_ehr_behaviour_change_without_level() -> dict[str, Any]:
    pid = "c52-owen"
    return request("c52", "patient-view", pid,
        patient=c.patient(pid, "2013-10-02", "male", "Owen", "Price"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 45.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 157.0, encounter=f"{pid}-enc2")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2023-05-20")],
        medications=[c.lev_order(f"{pid}-lev", pid, "387003", 1, "tablet", per_day=2, authored="2026-09-08")],
        visits=[
            _ehr_visit("2026-09-01", "Two seizures since the last visit on 750 mg bd; increased to 1000 mg bd."),
            _ehr_visit("2026-12-01", "Mum reports he has become very irritable and aggressive at school since the dose "
                                     "increase. No seizures since the last visit in September.", reason="44145005"),
        ],
        expect={"action": ["keep", "lower"], "cards": "one", "current_mg_per_day": 2000,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 45.0, "recommended": {"max": 2000}, "absent": ["raise levetiracetam"],
                "why": "Behavioural adverse effects after an increase, seizure-free since: keep and review, or lower; never "
                       "raise (domain.md §4, §6: the dose relation is weak, behaviour history the stronger predictor)."})


def c53_ehr_cluster_after_a_quiet_quarter() -> dict[str, Any]:
    pid = "c53-maya"
    return request("c53", "patient-view", pid,
        patient=c.patient(pid, "2016-03-09", "female", "Maya", "Rossi"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 30.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 139.0, encounter=f"{pid}-enc2")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "G40.009", onset="2026-02-11")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311288", 1, "tablet", per_day=2, authored="2026-03-02")],
        visits=[
            _ehr_visit("2026-09-01", "Seizure free since starting levetiracetam in March."),
            _ehr_visit("2026-12-01", "3 seizures in the past month, all from sleep, each under 2 minutes. Taking "
                                     "250 mg twice daily reliably.", reason="G40.009"),
        ],
        expect={"action": "raise", "cards": "one", "current_mg_per_day": 500, "rules": ["R-NO-DECREASE-WHILE-SEIZING"],
                "max_mg_per_day": MAX_4_TO_16_YEARS * 30.0, "recommended": {"min": 501, "max": MAX_4_TO_16_YEARS * 30.0},
                "step_mg_per_day": STEP_PER_KG * 30.0, "absent": ["taper"],
                "why": "3 seizures in a month on 17 mg/kg/day: raise within the label (domain.md §2, §6)."})


def c54_ehr_fifteen_seizure_free_two_years() -> dict[str, Any]:
    pid = "c54-ethan"
    return request("c54", "patient-view", pid,
        patient=c.patient(pid, "2011-07-19", "male", "Ethan", "Walsh"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 60.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 172.0, encounter=f"{pid}-enc2")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2021-01-08")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311290", 1, "tablet", per_day=2, authored="2023-02-14")],
        visits=[
            _ehr_visit("2026-05-05", "Seizure-free for over 18 months."),
            _ehr_visit("2026-12-01", "Seizure-free for over 2 years on levetiracetam 750 mg bd. Now 15.", reason="44145005"),
        ],
        expect={"action": ["taper", "keep"], "cards": "one", "current_mg_per_day": 1500,
                "rules": ["R-NO-INCREASE-SEIZURE-FREE"], "max_mg_per_day": ABSOLUTE_MAX, "recommended": {"max": 1500},
                "why": "15 years old, seizure-free over 2 years: withdrawal is offered (BECT remits by the mid-teens; "
                       "domain.md §4, §6)."})


def c55_ehr_small_child_on_solution_seizing() -> dict[str, Any]:
    pid = "c55-zoe"
    return request("c55", "patient-view", pid,
        patient=c.patient(pid, "2020-05-27", "female", "Zoe", "Dubois"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 20.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 116.0, encounter=f"{pid}-enc2")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2026-05-02")],
        medications=[c.lev_order(f"{pid}-lev", pid, "403884", 2, "mL", per_day=2, authored="2026-06-05")],
        visits=[
            _ehr_visit("2026-08-25", "No seizures since starting levetiracetam solution 2 mL twice daily."),
            _ehr_visit("2026-12-01", "2 focal seizures in the last 6 weeks, both on waking, about 2 minutes each.",
                       reason="44145005"),
        ],
        expect={"action": "raise", "cards": "one", "current_mg_per_day": 400, "rules": ["R-NO-DECREASE-WHILE-SEIZING"],
                "max_mg_per_day": MAX_4_TO_16_YEARS * 20.0, "recommended": {"min": 401, "max": MAX_4_TO_16_YEARS * 20.0},
                "step_mg_per_day": STEP_PER_KG * 20.0, "form": "solution", "absent": ["taper"],
                "why": "Seizures on 20 mg/kg/day: raise within the label, in oral solution at 20 kg (domain.md §2, §6)."})


def c56_levetiracetam_recorded_as_taken_not_ordered() -> dict[str, Any]:
    pid = "c56-leo"
    return request("c56", "patient-view", pid,
        patient=c.patient(pid, "2017-11-02", "male", "Leo", "Nakamura"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 25.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 127.0, encounter=f"{pid}-enc2")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2025-10-20")],
        medications=[],
        statements=[c.lev_statement(f"{pid}-lev", pid, "311288", 1, "tablet", per_day=2, since="2025-11-15")],
        visits=[
            _ehr_visit("2026-06-02", "Transferred from another hospital on levetiracetam 250 mg twice daily. Seizure-free."),
            _ehr_visit("2026-12-01", "3 seizures in the last 2 months on levetiracetam 250 mg bd (prescribed by the GP).",
                       reason="44145005"),
        ],
        expect={"action": "no-recommendation", "cards": "one", "problems": [{"kind": "unreadable", "item": "levetiracetam"}],
                "absent": ["start levetiracetam", "untreated", "levetiracetam order in effect"],
                "why": "Levetiracetam is recorded as taken (medicines reconciliation) but no order is on the chart: the dose "
                       "taken cannot be checked, so no dose is offered; never a start for a child already on it."})


def c57_ehr_rtf_notes_adolescent_breakthrough() -> dict[str, Any]:
    pid = "c57-sofia"
    return request("c57", "patient-view", pid,
        patient=c.patient(pid, "2012-02-14", "female", "Sofia", "Marquez"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 52.0, encounter=f"{pid}-enc2")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 160.0, encounter=f"{pid}-enc2")],
        labs=[],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2024-03-05")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311289", 1, "tablet", per_day=2, authored="2024-04-02")],
        visits=[
            Visit("2026-06-02", None, exam=None, note="Seizure-free since the last review. Tolerating Keppra 500 mg bd.",
                  note_as_rtf=True),
            Visit("2026-12-01", None, exam=None, reason="44145005", note_as_rtf=True,
                  note="Interval history: 2 nocturnal seizures since the last visit, each about 1 minute.\n"
                       "Adherence good. No side effects.\nPlan: increase levetiracetam."),
        ],
        expect={"action": "raise", "cards": "one", "current_mg_per_day": 1000, "rules": ["R-NO-DECREASE-WHILE-SEIZING"],
                "max_mg_per_day": ABSOLUTE_MAX, "recommended": {"min": 1001, "max": ABSOLUTE_MAX},
                "step_mg_per_day": STEP_ADULT, "absent": ["taper", "seizure-free 0 months"], "cites": ["seizures since the last visit"],
                "why": "Seizures on 19 mg/kg/day at 52 kg, the history only in RTF progress notes: raise by the adult step "
                       "of 500 mg twice daily within the label (domain.md §2, §6)."})


CHARTS: dict[str, Callable[[], dict[str, Any]]] = {
    "c01-raise-12y-70kg-14mgkg": c01_raise_12y_70kg_still_seizing_on_14_mg_kg,
    "c02-seizing-near-maximum": c02_still_seizing_near_maximum,
    "c03-seizure-free-2y-taper-offered": c03_seizure_free_2_years_taper_offered,
    "c04-seizure-free-2y-taper-draft-sign": c04_seizure_free_2_years_taper_draft_on_sign,
    "c45-seizure-free-2y-increase-draft-sign": c45_seizure_free_2_years_increase_draft_on_sign,
    "c05-breakthrough-4-in-3mo": c05_breakthrough_4_seizures_on_20_mg_kg,
    "c06-single-seizure-untreated": c06_single_lifetime_seizure_never_treated,
    "c07-never-treated-seizure-free": c07_never_treated_seizure_free,
    "c08-level-60-somnolence": c08_level_60_with_somnolence,
    "c09-adverse-effects-normal-level": c09_adverse_effects_with_normal_level,
    "c10-new-diagnosis-start": c10_new_diagnosis_3_seizures_start,
    "c11-infant-4-months-solution": c11_infant_4_months_solution,
    "c12-toddler-2y-solution": c12_toddler_2_years_solution,
    "c13-controlled-solution-keep": c13_controlled_on_solution_keep,
    "c14-16y-seizure-free-taper": c14_sixteen_years_seizure_free_taper,
    "c15-17y-still-seizing": c15_seventeen_years_still_seizing,
    "c16-adult-epilepsy-on-lev": c16_adult_epilepsy_on_levetiracetam,
    "c17-renal-egfr-64": c17_renal_egfr_64,
    "c18-renal-egfr-40-umol": c18_renal_egfr_40_umol,
    "c19-renal-egfr-20-lower": c19_renal_egfr_20_dose_above_renal_maximum,
    "c20-renal-egfr-8-specialist": c20_renal_egfr_below_10_specialist,
    "c21-creatinine-26-implausible": c21_creatinine_26_mg_dl_implausible,
    "c22-birthdate-0001": c22_birth_date_0001,
    "c23-missing-weight": c23_missing_weight,
    "c24-weight-older-6-months": c24_weight_older_than_6_months,
    "c25-weight-of-another-patient": c25_weight_of_another_patient,
    "c26-prefetch-of-another-patient": c26_whole_prefetch_of_another_patient,
    "c27-draft-overdose-sign": c27_draft_overdose_on_sign,
    "c28-draft-20000-entry-error": c28_draft_20000_mg_entry_error,
    "c29-draft-equals-current": c29_draft_equal_to_current_dose,
    "c30-out-of-scope-45y-af": c30_out_of_scope_adult_atrial_fibrillation,
    "c31-out-of-scope-8y-asthma": c31_out_of_scope_child_with_asthma,
    "c32-xr-adolescent-seizing": c32_extended_release_adolescent_seizing,
    "c33-pounds-contained-seizure-free-14mo": c33_pounds_contained_medication_seizure_free_14_months,
    "c34-recurrence-after-withdrawal": c34_recurrence_after_withdrawal,
    "c35-level-ug-ml-seizing": c35_level_in_ug_ml_seizing,
    "c36-order-select-start": c36_order_select_start_new_diagnosis,
    "c37-sign-other-medicine": c37_order_sign_for_another_medicine,
    "c38-sandbox-draft-select": c38_sandbox_shaped_raise_draft_on_select,
    "c39-on-lev-no-coded-diagnosis": c39_on_levetiracetam_without_a_coded_diagnosis,
    "c40-first-seizure-r56-9-only": c40_first_seizure_coded_r56_9_only,
    "c41-low-level-adherence": c41_low_level_seizing_adherence,
    "c42-refuted-epilepsy-out-of-scope": c42_refuted_epilepsy_never_treated,
    "c43-remitted-off-lev": c43_remitted_bect_off_levetiracetam,
    "c44-start-draft-after-single-seizure": c44_start_draft_after_a_single_seizure,
    "c46-single-prolonged-seizure-untreated": c46_single_prolonged_seizure_untreated,
    "c47-single-seizure-family-requests-treatment": c47_single_seizure_family_requests_treatment,
    "c48-ehr-breakthrough-after-quiet-year": c48_ehr_breakthrough_after_seizure_free_year,
    "c49-ehr-seizure-free-2-5-years": c49_ehr_seizure_free_two_and_a_half_years,
    "c50-ehr-chinese-new-diagnosis": c50_ehr_chinese_new_diagnosis_family_asks,
    "c51-ehr-single-seizure-family-waits": c51_ehr_single_seizure_family_prefers_to_wait,
    "c52-ehr-behaviour-change-no-level": c52_ehr_behaviour_change_without_level,
    "c53-ehr-cluster-after-quiet-quarter": c53_ehr_cluster_after_a_quiet_quarter,
    "c54-ehr-15y-seizure-free-2y": c54_ehr_fifteen_seizure_free_two_years,
    "c55-ehr-solution-seizing": c55_ehr_small_child_on_solution_seizing,
    "c56-lev-recorded-as-taken-not-ordered": c56_levetiracetam_recorded_as_taken_not_ordered,
    "c57-ehr-rtf-notes-breakthrough": c57_ehr_rtf_notes_adolescent_breakthrough,
}


def render(name: str) -> str:
    """The JSON text of one chart, as stored in charts/NAME.json."""
    return json.dumps(CHARTS[name](), indent=1, ensure_ascii=False) + "\n"


README = Path(__file__).parent / "README.md"
TABLE_START, TABLE_END = "<!-- charts table: written by charts_source -->", "<!-- end of charts table -->"


def table() -> str:
    """The Markdown table of the charts for README.md: situation, hook, expected action, why and source."""
    rows = ["| chart | hook | expected | why (source) |", "|---|---|---|---|"]
    for name, build in CHARTS.items():
        chart = build()
        expect = chart["expect"]
        action = expect.get("action")
        expected = "no card" if expect["cards"] == "none" else " or ".join([action] if isinstance(action, str) else action)
        rows.append(f"| `{name}` | {chart['hook']} | {expected} | {expect['why']} |")
    return "\n".join(rows)


def readme_text() -> str:
    """README.md with its charts table brought up to date."""
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    return f"{head}{TABLE_START}\n{table()}\n{TABLE_END}{tail}"


def main() -> None:
    CHARTS_DIR.mkdir(exist_ok=True)
    for stale in CHARTS_DIR.glob("*.json"):
        if stale.stem not in CHARTS:
            stale.unlink()
    for name in CHARTS:
        (CHARTS_DIR / f"{name}.json").write_text(render(name), encoding="utf-8")
    README.write_text(readme_text(), encoding="utf-8")
    print(f"wrote {len(CHARTS)} charts to {CHARTS_DIR} and their table to {README.name}")


if __name__ == "__main__":
    main()
