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
            notes.append(c.progress_note(f"{pid}-note{number}", pid, visit.day, visit.note, eid))
    return encounters, reports, notes


def request(name: str, hook: str, pid: str, *, patient: c.Resource, weights: list[c.Resource] | None,
            heights: list[c.Resource], labs: list[c.Resource], conditions: list[c.Resource],
            medications: list[c.Resource], visits: list[Visit], extra_encounters: list[c.Resource] | None = None,
            draft: c.Resource | None = None, expect: dict[str, Any]) -> dict[str, Any]:
    """The CDS Hooks request a chart is sent as, prefetch keyed as hooks/*.json, with its expectations."""
    encounters, reports, notes = follow_up(pid, visits)
    encounters = sorted(encounters + (extra_encounters or []), key=lambda e: e["period"]["start"], reverse=True)
    context: dict[str, Any] = {"userId": PRACTITIONER, "patientId": pid,
                               "encounterId": f"{pid}-enc{len(visits)}" if visits else f"{pid}-enc"}
    if draft is not None:
        context["draftOrders"] = c.draft(draft)
    prefetch = {
        "patient": patient,
        # The weight and height templates ask for the latest one only (_sort=-date&_count=1).
        "weight": None if weights is None else c.bundle(weights),
        "height": c.bundle(heights),
        "seizures": c.bundle(sorted(reports, key=lambda r: r["effectiveDateTime"], reverse=True)),
        "labs": c.bundle(labs),
        "conditions": c.bundle(conditions),
        "medications": c.bundle(medications),
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
                        encounter=f"{pid}-enc3", note="2 nocturnal focal seizures since September."),
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
                  note="Two nocturnal focal seizures with drooling and speech arrest since September, each "
                       "under a minute. Takes levetiracetam 500 mg twice daily, no missed doses. Weight 70 kg."),
        ],
        expect={"action": "raise", "cards": "one", "current_mg_per_day": 1000,
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
                  note="One nocturnal seizure in October on levetiracetam 750 mg twice daily (53 mg/kg/day)."),
        ],
        expect={"action": ["keep", "raise"], "cards": "one", "current_mg_per_day": 1500,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 28.3,
                "recommended": {"min": 1500, "max": MAX_4_TO_16_YEARS * 28.3}, "form": "tablet",
                "cites": ["1500 mg/day", "53 mg/kg/day"],
                "why": "Seizures in the last 3 months on 53 mg/kg/day, near the 60 mg/kg/day maximum: keep or raise "
                       "within it, never lower while seizing (issue rail; domain.md §2, §6)."})


def _amira(name: str, hook: str, draft: c.Resource | None, expect: dict[str, Any]) -> dict[str, Any]:
    """11 years, 38 kg, on 1000 mg/day, last seizure 2024-10-20: seizure-free for 25 months."""
    pid = "c03-amira"
    return request(name, hook, pid,
        patient=c.patient(pid, "2015-05-02", "female", "Amira", "Haddad"),
        weights=[c.weight(f"{pid}-wt", pid, "2026-12-01", 38.0, encounter=f"{pid}-enc5")],
        heights=[c.height(f"{pid}-ht", pid, "2026-12-01", 146.0, encounter=f"{pid}-enc5")],
        labs=[c.creatinine(f"{pid}-cr", pid, "2026-05-05", 46.0, "umol/L")],
        conditions=[c.condition(f"{pid}-bect", pid, "44145005", onset="2022-02-15",
                                note="BECT; last seizure 20 Oct 2024.")],
        medications=[c.lev_order(f"{pid}-lev", pid, "311289", 1, "tablet", per_day=2, authored="2022-03-01")],
        visits=[
            Visit("2024-11-05", 1, True, True, "under-1-min", assessment="stable"),
            Visit("2025-05-06", 0, False, False, "none", assessment="improved"),
            Visit("2025-11-04", 0, False, False, "none", assessment="stable"),
            Visit("2026-05-05", 0, False, False, "none", assessment="stable"),
            Visit("2026-12-01", 0, False, False, "none", assessment="stable", reason="44145005",
                  note="Seizure-free since 20 October 2024 (25 months) on levetiracetam 500 mg twice daily. "
                       "Parents ask about stopping."),
        ],
        draft=draft, expect=expect)


def c03_seizure_free_2_years_taper_offered() -> dict[str, Any]:
    return _amira("c03", "patient-view", None, {
        "action": ["taper", "keep"], "cards": "one", "current_mg_per_day": 1000,
        "max_mg_per_day": MAX_4_TO_16_YEARS * 38.0, "recommended": {"max": 1000},
        "cites": ["seizure-free"],
        "why": "Seizure-free for 2 years on 1000 mg/day: withdrawal is offered (not imposed), never an increase "
               "(domain.md §4, §6: remission usually 1–3 y after onset; consider withdrawal after 1–2 y)."})


def c04_seizure_free_2_years_taper_draft_on_sign() -> dict[str, Any]:
    pid = "c03-amira"
    taper = c.lev_order(f"{pid}-taper", pid, "311288", 1, "tablet", per_day=2, authored="2026-12-01",
                        encounter=f"{pid}-enc5", days_supply=14)
    return _amira("c04", "order-sign", taper, {
        "action": "taper", "cards": "one", "indicator": "info", "current_mg_per_day": 1000,
        "draft_mg_per_day": 500, "max_mg_per_day": MAX_4_TO_16_YEARS * 38.0, "recommended": {"max": 1000},
        "cites": ["Draft 500 mg/day"],
        "why": "A taper draft (1000 → 500 mg/day, −13 mg/kg/day, within the −20 mg/kg/day per 2 weeks the EU "
               "SmPC allows) after 2 years seizure-free is sound: support it (domain.md §2, §6)."})


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
                  note="4 nocturnal seizures since September, the longest 2 minutes (ED visit 18 Oct). "
                       "Adherent to levetiracetam 250 mg twice daily (20 mg/kg/day)."),
        ],
        extra_encounters=[c.encounter(f"{pid}-ed", pid, "2026-10-18", reason="R56.9", kind="EMER",
                                      service="Paediatric emergency")],
        expect={"action": "raise", "cards": "one", "current_mg_per_day": 500,
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
                      note="First neurology visit after a single nocturnal seizure on 5 October; none since. "
                           "Discussed watchful waiting with the parents.")],
        extra_encounters=[c.encounter(f"{pid}-ed", pid, "2026-10-05", reason="91175000", kind="EMER",
                                      service="Paediatric emergency")],
        expect={"action": "none", "cards": "one", "current_mg_per_day": 0, "cites": ["watchful waiting"],
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
                                note="Two brief nocturnal seizures (Sep and Nov 2024); family chose no medication.")],
        medications=[],
        visits=[
            Visit("2024-11-20", 2, True, True, "under-1-min", assessment="stable"),
            Visit("2025-06-03", 0, False, False, "none", assessment="improved"),
            Visit("2025-12-02", 0, False, False, "none", assessment="stable"),
            Visit("2026-06-02", 0, False, False, "none", assessment="stable"),
            Visit("2026-12-01", 0, False, False, "none", assessment="stable", reason="44145005",
                  note="Seizure-free since November 2024, never treated."),
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
                  note="Seizure-free since May. Teachers report daytime somnolence; falls asleep in class. "
                       "Levetiracetam trough 60 mg/L."),
        ],
        expect={"action": "lower", "cards": "one", "current_mg_per_day": 1500,
                "max_mg_per_day": MAX_4_TO_16_YEARS * 32.0, "recommended": {"max": 1499}, "form": "tablet",
                "cites": ["60 mg/L"],
                "why": "Somnolence with a trough of 60 mg/L, above the 12–46 mg/L reference, seizure-free 6 months: "
                       "reduce (domain.md §3 reference range, §6)."})


CHARTS: dict[str, Callable[[], dict[str, Any]]] = {
    "c01-raise-12y-70kg-14mgkg": c01_raise_12y_70kg_still_seizing_on_14_mg_kg,
    "c02-seizing-near-maximum": c02_still_seizing_near_maximum,
    "c03-seizure-free-2y-taper-offered": c03_seizure_free_2_years_taper_offered,
    "c04-seizure-free-2y-taper-draft-sign": c04_seizure_free_2_years_taper_draft_on_sign,
    "c05-breakthrough-4-in-3mo": c05_breakthrough_4_seizures_on_20_mg_kg,
    "c06-single-seizure-untreated": c06_single_lifetime_seizure_never_treated,
    "c07-never-treated-seizure-free": c07_never_treated_seizure_free,
    "c08-level-60-somnolence": c08_level_60_with_somnolence,
}


def render(name: str) -> str:
    """The JSON text of one chart, as stored in charts/NAME.json."""
    return json.dumps(CHARTS[name](), indent=1, ensure_ascii=False) + "\n"


def main() -> None:
    CHARTS_DIR.mkdir(exist_ok=True)
    for stale in CHARTS_DIR.glob("*.json"):
        if stale.stem not in CHARTS:
            stale.unlink()
    for name in CHARTS:
        (CHARTS_DIR / f"{name}.json").write_text(render(name), encoding="utf-8")
    print(f"wrote {len(CHARTS)} charts to {CHARTS_DIR}")


if __name__ == "__main__":
    main()
