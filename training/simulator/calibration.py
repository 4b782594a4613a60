"""The cohort's statistics beside the published study's (domain.md §1), with the issue's tolerances.

Study figures: 245 children; follow-ups per child 1–5: 95, 6–10: 76, 11–15: 49, 16–20: 16 (the rest),
>20: 9; no seizure at 45.4% of visits; exam good 43.64%, fair 13.75%, deficit 42.61%; daily doses over
the 12 classes 0 g 561, 0.125 g 11, 0.25 g 104, 0.375 g 81, 0.5 g 623, 0.75 g 992, 1 g 934, 1.25 g 190,
1.5 g 215, and "a few" above 1.5 g (counted here as 1.75 g 3, 2 g 3, 3 g 1, an assumption).

"Seizure-free visit" is matched to a visit whose reports say no seizure within the last 6 months
(so also none since the last visit or within 3 months): the study's outcome classes were "no seizure"
45.4%, "mild symptoms" 34.1% and worse for the rest, and on the trial figures (domain.md §4: 19%
recurrence within 6 months on LEV) a "since the last visit" reading could not be as low as 45.4%.
The share with no seizure since the last visit is reported beside it. Note that the
study's dose counts add up to about 3,700 visits (15 per child) while its follow-up buckets imply about
8 per child; the simulator matches the buckets (the issue's criterion), so its visit total is lower.

The study is a levetiracetam dosing cohort: its 245 children were all prescribed levetiracetam (its 0 g
visits come before the start and after withdrawal). The simulated physicians wait after a single
seizure (domain.md §6), so part of a simulated cohort is never treated; those children are not in the
study's population and the comparison uses the children ever prescribed levetiracetam
(:func:`study_population`), reporting how many were left out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from fhir_mapping.codes import EXAM_CLASSES
from fhir_mapping.dosing import DOSE_CLASSES_G, N_DOSE_CLASSES, RARE_DOSE_CLASSES
from training.simulator.simulate import ChildRun

STUDY_PATIENTS: Final = 245
BUCKETS: Final[tuple[tuple[str, int, int], ...]] = (("1-5", 1, 5), ("6-10", 6, 10), ("11-15", 11, 15), ("16-20", 16, 20), (">20", 21, 10**6))
STUDY_BUCKET_COUNTS: Final = (95, 76, 49, 16, 9)  # domain.md §1 (16–20 = 245 − the others)
STUDY_SEIZURE_FREE_SHARE: Final = 0.454  # domain.md §1
STUDY_EXAM_SHARES: Final = (0.4364, 0.1375, 0.4261)  # domain.md §1
# domain.md §1; "a few above 1.5 g (1.75, 2, 3 g)": 3, 3, 1 assumed.
STUDY_DOSE_COUNTS: Final = (561, 11, 104, 81, 623, 992, 934, 190, 215, 3, 3, 1)
TOP_CLASSES_IN_ORDER: Final = (5, 6, 4, 0)  # 0.75, 1, 0.5, 0 g: the study's four most common classes
# Tolerances of issue #3, in share points.
BUCKET_TOLERANCE: Final = 0.10
SEIZURE_FREE_TOLERANCE: Final = 0.05
DOSE_TOLERANCE: Final = 0.05


def _shares(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts))
    return [c / total if total else 0.0 for c in counts]


def cohort_statistics(runs: Sequence[ChildRun]) -> dict[str, Any]:
    """Follow-up buckets, seizure-free visit share, exam classes and dose-class shares of a cohort."""
    n_visits = np.array([len(r.visits) for r in runs])
    bucket_counts = [int(((n_visits >= lo) & (n_visits <= hi)).sum()) for _, lo, hi in BUCKETS]
    visits = [v for r in runs for v in r.visits]
    seizure_free = float(np.mean([not v.seizure_last_6_months for v in visits])) if visits else 0.0
    free_since_last = float(np.mean([not v.seizure_since_last_visit for v in visits])) if visits else 0.0
    exam_counts = [sum(v.exam_class == e for v in visits) for e in EXAM_CLASSES]
    dose_counts = np.bincount([v.dose_class for v in visits], minlength=N_DOSE_CLASSES).tolist()
    return {
        "patients": len(runs),
        "visits": len(visits),
        "visits_per_patient": float(n_visits.mean()) if len(runs) else 0.0,
        "followup_bucket_counts": bucket_counts,
        "followup_bucket_shares": _shares(bucket_counts),
        "seizure_free_visit_share": seizure_free,
        "no_seizure_since_last_visit_share": free_since_last,
        "exam_shares": _shares(exam_counts),
        "dose_class_counts": dose_counts,
        "dose_class_shares": _shares(dose_counts),
    }


def study_statistics() -> dict[str, Any]:
    """The published study's statistics in the same shape."""
    return {
        "patients": STUDY_PATIENTS,
        "visits": sum(STUDY_DOSE_COUNTS),
        "followup_bucket_counts": list(STUDY_BUCKET_COUNTS),
        "followup_bucket_shares": _shares(STUDY_BUCKET_COUNTS),
        "seizure_free_visit_share": STUDY_SEIZURE_FREE_SHARE,
        "exam_shares": list(STUDY_EXAM_SHARES),
        "dose_class_counts": list(STUDY_DOSE_COUNTS),
        "dose_class_shares": _shares(STUDY_DOSE_COUNTS),
    }


def checks(cohort: dict[str, Any]) -> dict[str, bool]:
    """The issue's calibration criteria, each True when met."""
    study = study_statistics()
    dose = cohort["dose_class_shares"]
    order = sorted(range(N_DOSE_CLASSES), key=lambda c: -dose[c])[:4]
    return {
        "followup_buckets_within_10_points": all(
            abs(a - b) <= BUCKET_TOLERANCE for a, b in zip(cohort["followup_bucket_shares"], study["followup_bucket_shares"], strict=True)
        ),
        "seizure_free_share_within_5_points": abs(cohort["seizure_free_visit_share"] - STUDY_SEIZURE_FREE_SHARE) <= SEIZURE_FREE_TOLERANCE,
        "top_four_dose_classes_in_study_order": tuple(order) == TOP_CLASSES_IN_ORDER,
        "top_four_dose_shares_within_5_points": all(abs(dose[c] - study["dose_class_shares"][c]) <= DOSE_TOLERANCE for c in TOP_CLASSES_IN_ORDER),
        "rare_low_classes_present": any(cohort["dose_class_counts"][c] > 0 for c in RARE_DOSE_CLASSES if DOSE_CLASSES_G[c] < 0.5),
        "rare_high_classes_present": any(cohort["dose_class_counts"][c] > 0 for c in RARE_DOSE_CLASSES if DOSE_CLASSES_G[c] >= 1.5),
    }


def study_population(runs: Sequence[ChildRun]) -> list[ChildRun]:
    """The children the study would include: those prescribed levetiracetam at some visit."""
    return [r for r in runs if any(v.dose_class > 0 for v in r.visits)]


def calibration_report(runs: Sequence[ChildRun], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The calibration.json content: cohort (its study population), study, checks and any extra sections."""
    population = study_population(runs)
    cohort = cohort_statistics(population)
    cohort["never_treated_children_left_out"] = len(runs) - len(population)
    report = {"cohort": cohort, "study": study_statistics(), "checks": checks(cohort)}
    if extra:
        report.update(extra)
    return report


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def calibration_markdown(report: dict[str, Any]) -> str:
    """calibration.md: the same numbers side by side, for people."""
    cohort, study, ok = report["cohort"], report["study"], report["checks"]
    lines = [
        "# Simulated cohort beside the published study",
        "",
        f"Cohort: {cohort['patients']} children, {cohort['visits']} visits ({cohort['visits_per_patient']:.1f} per child). "
        f"Study: {study['patients']} children (domain.md §1). Children never prescribed levetiracetam, outside the "
        f"study's population, left out: {cohort.get('never_treated_children_left_out', 0)}.",
        "",
        "## Follow-up visits per child (tolerance ±10 points)",
        "",
        "| visits | cohort | study |",
        "|---|---|---|",
    ]
    for (name, _, _), a, b in zip(BUCKETS, cohort["followup_bucket_shares"], study["followup_bucket_shares"], strict=True):
        lines.append(f"| {name} | {_pct(a)} | {_pct(b)} |")
    lines += [
        "",
        "## Seizure-free visits (no seizure within the last 6 months; tolerance ±5 points)",
        "",
        f"Cohort {_pct(cohort['seizure_free_visit_share'])}, study {_pct(study['seizure_free_visit_share'])} "
        f"(cohort visits with no seizure since the last visit: {_pct(cohort['no_seizure_since_last_visit_share'])}).",
        "",
        "## Physical examination",
        "",
        "| class | cohort | study |",
        "|---|---|---|",
    ]
    for name, a, b in zip(EXAM_CLASSES, cohort["exam_shares"], study["exam_shares"], strict=True):
        lines.append(f"| {name} | {_pct(a)} | {_pct(b)} |")
    lines += ["", "## Daily dose decided at the visit (12 classes; top four ±5 points)", "", "| g/day | cohort visits | cohort | study visits | study |", "|---|---|---|---|---|"]
    for c in range(N_DOSE_CLASSES):
        lines.append(
            f"| {DOSE_CLASSES_G[c]:g} | {cohort['dose_class_counts'][c]} | {_pct(cohort['dose_class_shares'][c])} | "
            f"{study['dose_class_counts'][c]} | {_pct(study['dose_class_shares'][c])} |"
        )
    lines += ["", "## Checks", ""]
    simulated = cohort["patients"] + cohort.get("never_treated_children_left_out", 0)
    if not checks_meaningful(simulated):
        lines += [too_small_to_judge(simulated), ""]
    lines += [f"- {'PASS' if passed else 'FAIL'}: {name.replace('_', ' ')}" for name, passed in ok.items()]
    for key, value in report.items():
        if key in ("cohort", "study", "checks", "config", "sources"):
            continue
        lines += ["", f"## {key.replace('_', ' ').capitalize()}", "", "```", str(value), "```"]
    if "sources" in report:
        lines += ["", "## Parameters marked as assumptions (configuration fields without a primary source)", ""]
        lines += [f"- `{s['name']}`: {s['source']}" for s in report["sources"] if s["assumption"]]
    return for_readers("\n".join(lines) + "\n")


# The checks compare shares with a study of 245 children (domain.md §1): in a smaller cohort sampling
# noise alone moves a dose class's share by more than the ±5-point tolerance, and the top four classes
# of the study differ by less than 2 points, so a FAIL says nothing about the simulator.
MIN_PATIENTS_FOR_CHECKS = STUDY_PATIENTS


def checks_meaningful(patients: int) -> bool:
    return patients >= MIN_PATIENTS_FOR_CHECKS


def too_small_to_judge(patients: int) -> str:
    return (f"Not judged: {patients} children are too few for these checks to mean anything (sampling noise alone "
            f"exceeds the tolerances); they are meaningful from {MIN_PATIENTS_FOR_CHECKS} children, the study's size.")


_WORK_REFERENCE = re.compile(r"\s*\(issue #\d+\)|issue #\d+(: | / )?|(?<=[ (])/ ")
_NOTES = re.compile(r"domain\.md §")


def for_readers(text: str) -> str:
    """Source notes as a reader of the output can follow them: no work-tracking numbers, no file outside the repository."""
    return _NOTES.sub("domain notes §", _WORK_REFERENCE.sub("", text))


def six_month_recurrence(children: Sequence[Any], config: Any, mg_per_kg_day: float) -> float:
    """Share of children with recurrent seizures who have ≥1 seizure in the 6 months after the first visit
    on a fixed dose per kg (0 = untreated): the model's counterpart of the trial figures in domain.md §4
    (untreated 71%, Rating 2000; LEV 19%, Borggraefe 2013). The sourced PD profile meets 19% at 30
    mg/kg/day and keeps improving with dose (EC50 31.5 mg/L lies above the label's exposures), so "19% at
    each of 20, 30 and 40 mg/kg/day" holds only within the wider tolerance there; the fitted profile
    meets it at each dose."""
    from datetime import timedelta

    recurrent = [c for c in children if not c.single_seizure]
    if not recurrent:
        return float("nan")
    seized = 0
    for child in recurrent:
        start = child.first_visit_date
        mg = mg_per_kg_day * child.weight_kg(start, config)
        effect = child.drug_effect(child.average_concentration(mg, start, config), config)
        first, last = start.toordinal(), (start + timedelta(days=182)).toordinal()
        days = child.seizure_days + child.onset_date.toordinal()
        window = (days > first) & (days <= last)
        seized += bool((window & (child.seizure_marks < 1.0 - effect)).any())
    return seized / len(recurrent)
