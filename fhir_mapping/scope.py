"""Who the dose service is for: a child (or adult) of a labelled age with epilepsy or seizures, or on levetiracetam.

EHRs fire patient-view on every chart they open. A dose card for a patient with atrial fibrillation
or asthma is noise at best and a hazard at worst, so the service answers only patients in scope:

- an age the label covers (levetiracetam is labelled from 1 month, domain.md §2) that is also a
  possible human age (a birthDate of 0001-01-01 is a data problem, never an adult);
- and either an epilepsy or seizure diagnosis from the code set below, or a levetiracetam order ever
  (any status but entered-in-error; a levetiracetam MedicationStatement counts too).

The code set is exact (system, code), except ICD-10 category G40 (epilepsy and recurrent seizures),
which is matched on the category with all its subcodes: ICD-10 is hierarchical by code prefix.
Outside the usual BECT ages the service still answers, but says the age is atypical (domain.md §4).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from fhir_mapping import codes
from fhir_mapping.dosing import DAYS_PER_YEAR, MIN_LABELLED_AGE_YEARS
from fhir_mapping.inputs import parse_date, reference_id
from fhir_mapping.medication import asm_key, mentions_levetiracetam

ICD10_WHO: Final = "http://hl7.org/fhir/sid/icd-10"
# SNOMED CT epilepsy and seizure concepts (domain.md §5: the BECT codes, and the codes real charts use:
# Synthea's epilepsy patients and EHR encounter diagnoses).
EPILEPSY_SNOMED: Final[dict[str, str]] = {
    "44145005": "Benign rolandic epilepsy",
    "278510009": "Localization-related idiopathic epilepsy",
    "84757009": "Epilepsy",
    "128613002": "Seizure disorder",
    "91175000": "Seizure",
    "703151001": "History of single seizure",
}
# ICD-10-CM R56.9 "Unspecified convulsions" (domain.md §5); G40.* below.
EPILEPSY_ICD10_CODES: Final[dict[str, str]] = {"R56.9": "Unspecified convulsions"}
EPILEPSY_ICD10_CATEGORY: Final = "G40"  # "Epilepsy and recurrent seizures", all subcodes (domain.md §5)
IGNORED_VERIFICATION: Final = frozenset({"entered-in-error", "refuted"})
IGNORED_ORDER_STATUS: Final = frozenset({"entered-in-error"})
# A birthDate that gives more than this is a typing or migration error, not a patient: the oldest
# documented human lived 122 years.
MAX_PLAUSIBLE_AGE_YEARS: Final = 122.0
# BECT: onset at 4–10 years in 90%, remission nearly always by 15–16 years (domain.md §4).
BECT_USUAL_ONSET_YEARS: Final = (4.0, 10.0)
BECT_USUAL_REMISSION_AGE_YEARS: Final = 16.0


@dataclass(frozen=True)
class Scope:
    """Whether the service should answer for this patient, and why (plain words, no identifiers)."""

    in_scope: bool
    reason: str  # "in-scope", "age-not-labelled", "not-epilepsy"
    detail: str
    diagnoses: tuple[str, ...] = ()  # displays of the matching diagnoses
    levetiracetam_ever: bool = False
    age_problem: str | None = None  # an implausible birthDate or age: a data problem
    atypical_age: str | None = None  # outside the usual BECT ages: said on the card


def epilepsy_diagnosis(condition: Mapping[str, Any]) -> str | None:
    """The display of the code-set entry a Condition matches, or None."""
    code = condition.get("code")
    if not isinstance(code, dict):
        return None
    codings = code.get("coding")
    for coding in codings if isinstance(codings, list) else []:
        if not isinstance(coding, dict):
            continue
        system, value = coding.get("system"), coding.get("code")
        if not isinstance(system, str) or not isinstance(value, str):
            continue
        system, value = system.strip(), value.strip().upper()
        if system == codes.SNOMED and value in EPILEPSY_SNOMED:
            return EPILEPSY_SNOMED[value]
        if system in (codes.ICD10CM, ICD10_WHO):
            if value in EPILEPSY_ICD10_CODES:
                return EPILEPSY_ICD10_CODES[value]
            if value == EPILEPSY_ICD10_CATEGORY or value.startswith(EPILEPSY_ICD10_CATEGORY + "."):
                return f"Epilepsy and recurrent seizures (ICD-10 {value})"
    return None


def _verification_ignored(condition: Mapping[str, Any]) -> bool:
    status = condition.get("verificationStatus")
    codings = status.get("coding") if isinstance(status, dict) else None
    return any(isinstance(c, dict) and c.get("code") in IGNORED_VERIFICATION for c in codings or [])


def _belongs_to(resource: Mapping[str, Any], patient_id: str) -> bool:
    for field in ("subject", "patient"):
        found = reference_id(resource.get(field), "Patient")
        if found is not None:
            return found == patient_id
    return False


def age_problem(birth_date: date | None, raw_birth_date: object, today: date) -> str | None:
    """Why a birthDate cannot be a patient's (None when it can, or when it is simply absent)."""
    if birth_date is None:
        return None
    if birth_date > today:
        return f"birthDate {birth_date.isoformat()} is in the future"
    age = (today - birth_date).days / DAYS_PER_YEAR
    if age > MAX_PLAUSIBLE_AGE_YEARS:
        shown = raw_birth_date if isinstance(raw_birth_date, str) else birth_date.isoformat()
        return f"birthDate {shown} gives an age of {age:.0f} years, which no patient has"
    return None


def atypical_age_note(age_years: float, onset_age_years: float | None) -> str | None:
    """A plain sentence when the age (or the age at onset) is outside the usual BECT ages."""
    low, high = BECT_USUAL_ONSET_YEARS
    if onset_age_years is not None and not low <= onset_age_years <= high:
        return (f"Onset at {onset_age_years:.1f} years is atypical for BECT (onset at {low:g}–{high:g} years in "
                f"90%): consider whether another epilepsy syndrome fits better.")
    if age_years < low:
        return (f"Age {age_years:.1f} years is atypical for BECT (onset at {low:g}–{high:g} years in 90%): "
                "consider whether another epilepsy syndrome fits better.")
    if age_years >= BECT_USUAL_REMISSION_AGE_YEARS:
        return (f"Age {age_years:.0f} years is atypical for BECT (remission nearly always by "
                f"{BECT_USUAL_REMISSION_AGE_YEARS:g} years): the adult label applies; review the diagnosis.")
    return None


def judge_scope(resources: Iterable[Mapping[str, Any]], patient_id: str, today: date, *,
                drafts: Iterable[Mapping[str, Any]] = (), onset: date | None = None) -> Scope:
    """Whether ``patient_id`` is in scope on ``today`` (see the module docstring).

    ``drafts`` are the levetiracetam draft orders of an order hook: an order being written counts as
    a levetiracetam order. An age that cannot be read is not judged here (it is a data problem the
    card names); an implausible one is returned in ``age_problem``.
    """
    items = list(resources)
    medications = {f"Medication/{r['id']}": r for r in items
                   if r.get("resourceType") == "Medication" and isinstance(r.get("id"), str)}
    diagnoses: list[str] = []
    levetiracetam = any(True for _ in drafts)
    birth: date | None = None
    raw_birth: object = None
    for resource in items:
        kind = resource.get("resourceType")
        if kind == "Patient" and resource.get("id") == patient_id:
            raw_birth = resource.get("birthDate")
            birth = parse_date(raw_birth)
        elif kind == "Condition" and _belongs_to(resource, patient_id) and not _verification_ignored(resource):
            found = epilepsy_diagnosis(resource)
            if found is not None and found not in diagnoses:
                diagnoses.append(found)
        elif kind in ("MedicationRequest", "MedicationStatement") and _belongs_to(resource, patient_id):
            status = resource.get("status")
            if isinstance(status, str) and status.strip().lower() in IGNORED_ORDER_STATUS:
                continue
            if asm_key(resource, medications) == "levetiracetam" or mentions_levetiracetam(resource, medications):
                levetiracetam = True
    problem = age_problem(birth, raw_birth, today)
    relevant = bool(diagnoses) or levetiracetam
    if not relevant:
        return Scope(False, "not-epilepsy", "no epilepsy or seizure diagnosis and never a levetiracetam order")
    if problem is not None:
        return Scope(True, "in-scope", "epilepsy or levetiracetam, but the age is not usable", tuple(diagnoses),
                     levetiracetam, age_problem=problem)
    atypical = None
    if birth is not None:
        age = (today - birth).days / DAYS_PER_YEAR
        if age < MIN_LABELLED_AGE_YEARS:
            return Scope(False, "age-not-labelled", "younger than 1 month: levetiracetam is not labelled",
                         tuple(diagnoses), levetiracetam)
        onset_age = (onset - birth).days / DAYS_PER_YEAR if onset is not None and onset >= birth else None
        atypical = atypical_age_note(age, onset_age)
    return Scope(True, "in-scope", "epilepsy or seizure diagnosis, or levetiracetam", tuple(diagnoses), levetiracetam,
                 atypical_age=atypical)
