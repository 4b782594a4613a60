"""Code tables: every coded concept epidose reads or writes, matched on the exact (system, code).

Sources are ../shared/domain.md §5 (LOINC, RxNorm, SNOMED CT, ICD-10-CM). Entries marked
``verify=True`` carry a code the domain sheet itself marks as not yet confirmed against the
terminology server; they are used, but flagged so a reviewer knows where to look first.
Concepts with no standard code live in the project CodeSystem :data:`EPIDOSE_SYSTEM`.

Never match by code alone or by prefix: LOINC 2160-0 and an RxNorm 2160 are different things.
``tests/test_codes.py`` reviews every entry's display and unit against its own copy of this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

LOINC: Final = "http://loinc.org"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED: Final = "http://snomed.info/sct"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
ATC: Final = "http://www.whocc.no/atc"
UCUM: Final = "http://unitsofmeasure.org"
# The project's own CodeSystem for concepts that have no standard code (stable canonical URL).
EPIDOSE_SYSTEM: Final = "https://epidose.org/fhir/CodeSystem/epidose"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
V3_ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
TIMING_ABBREVIATION: Final = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
ORDERABLE_DRUG_FORM: Final = "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm"
ROUTE_SNOMED_ORAL: Final = ("http://snomed.info/sct", "26643006", "Oral route")


@dataclass(frozen=True, slots=True)
class Concept:
    """One coded concept.

    ``key`` is the project's name for it (used in timelines and feature names); ``unit`` the
    canonical UCUM unit of its value where it has one; ``dimension`` the row of
    :data:`fhir_mapping.units.CONVERSIONS` its quantities convert through.
    """

    key: str
    system: str
    code: str
    display: str
    unit: str | None = None
    dimension: str | None = None
    verify: bool = False


# --- Observations (LOINC, domain.md §5) -----------------------------------------------------
OBSERVATIONS: Final[tuple[Concept, ...]] = (
    Concept("weight", LOINC, "29463-7", "Body weight", "kg", "mass_body"),
    Concept("weight", LOINC, "3141-9", "Body weight Measured", "kg", "mass_body"),
    Concept("height", LOINC, "8302-2", "Body height", "cm", "length_body"),
    Concept("lev_level", LOINC, "30471-7", "Levetiracetam [Mass/volume] in Serum or Plasma", "mg/L", "drug_level"),
    Concept("creatinine", LOINC, "2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", "creatinine"),
    Concept("alt", LOINC, "1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", "enzyme"),
    Concept("ast", LOINC, "1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", "enzyme"),
    Concept("wbc", LOINC, "6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", "cell_count"),
    Concept("hemoglobin", LOINC, "718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "hemoglobin"),
    Concept("platelets", LOINC, "777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", "cell_count"),
    Concept("eeg", LOINC, "11523-8", "EEG study"),
    Concept("egfr", LOINC, "50384-7", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by Creatinine-based formula (Schwartz)", "mL/min/{1.73_m2}", "gfr", verify=True),
    # Project codes: the published state has these, LOINC has no code for them.
    Concept("seizure_count_since_last_visit", EPIDOSE_SYSTEM, "seizure-count-since-last-visit", "Number of seizures since the last visit"),
    Concept("seizure_last_3_months", EPIDOSE_SYSTEM, "seizure-last-3-months", "Any seizure within the last 3 months"),
    Concept("seizure_last_6_months", EPIDOSE_SYSTEM, "seizure-last-6-months", "Any seizure within the last 6 months"),
    Concept("seizure_duration_class", EPIDOSE_SYSTEM, "seizure-duration-class", "Longest seizure duration since the last visit (ordinal class)"),
    Concept("physical_exam_class", EPIDOSE_SYSTEM, "physical-exam-class", "Physical and neurological examination class"),
    Concept("physician_assessment", EPIDOSE_SYSTEM, "physician-assessment", "Physician assessment of the course since the last visit"),
    Concept("behaviour_adverse_effect", EPIDOSE_SYSTEM, "behaviour-adverse-effect", "Behavioural adverse effect reported since the last visit"),
    # Not in the published state: domain.md §6 names the family's request among the reasons to treat
    # after a single seizure, so the clinical rails read it (it is not a model feature).
    Concept("family_requests_treatment", EPIDOSE_SYSTEM, "family-requests-treatment", "The family asks for daily anti-seizure treatment"),
)

# Answer codes in the project CodeSystem (valueCodeableConcept of the project observations).
EXAM_CLASSES: Final = ("good", "fair", "deficit")  # published exam classes (domain.md §1)
ASSESSMENT_CLASSES: Final = ("improved", "stable", "worse")
DURATION_CLASSES: Final = ("none", "under-1-min", "1-to-5-min", "over-5-min")  # ordinal 0..3
EEG_RESULTS: Final = ("normal", "centrotemporal-spikes", "other-abnormal")
ANSWER_DISPLAYS: Final[dict[str, str]] = {
    "good": "Examination good", "fair": "Examination fair", "deficit": "Some deficit on examination",
    "improved": "Improved", "stable": "Stable", "worse": "Worse",
    "none": "No seizure", "under-1-min": "Under 1 minute", "1-to-5-min": "1 to 5 minutes",
    "over-5-min": "Over 5 minutes",
    "normal": "Normal EEG", "centrotemporal-spikes": "Centrotemporal spikes", "other-abnormal": "Other abnormal EEG",
}

# --- Conditions (domain.md §5) -------------------------------------------------------------
CONDITIONS: Final[tuple[Concept, ...]] = (
    Concept("bect", SNOMED, "44145005", "Benign rolandic epilepsy"),
    Concept("idiopathic_focal_epilepsy", SNOMED, "278510009", "Localization-related idiopathic epilepsy"),
    Concept("epilepsy", SNOMED, "84757009", "Epilepsy"),
    Concept("seizure_disorder", SNOMED, "128613002", "Seizure disorder"),
    Concept("seizure", SNOMED, "91175000", "Seizure"),
    Concept("bect", ICD10CM, "G40.009", "Localization-related (focal) (partial) idiopathic epilepsy and epileptic syndromes with seizures of localized onset, not intractable, without status epilepticus"),
    Concept("bect", ICD10CM, "G40.001", "Localization-related (focal) (partial) idiopathic epilepsy and epileptic syndromes with seizures of localized onset, not intractable, with status epilepticus"),
    Concept("bect", ICD10CM, "G40.019", "Localization-related (focal) (partial) idiopathic epilepsy and epileptic syndromes with seizures of localized onset, intractable, without status epilepticus"),
    Concept("bect", ICD10CM, "G40.011", "Localization-related (focal) (partial) idiopathic epilepsy and epileptic syndromes with seizures of localized onset, intractable, with status epilepticus"),
    Concept("abnormal_eeg", ICD10CM, "R94.02", "Abnormal electroencephalogram [EEG]"),
    # Where real charts keep seizures (domain.md §5): Synthea's epilepsy module and EHR encounter
    # diagnoses. 703151001 is taken from Synthea's records, not checked against a SNOMED release.
    Concept("history_of_single_seizure", SNOMED, "703151001", "History of single seizure", verify=True),
    Concept("seizure", ICD10CM, "R56.9", "Unspecified convulsions"),
)
# Condition keys that record a seizure (an event dated by its onset), not a diagnosis of epilepsy.
SEIZURE_EVENT_KEYS: Final = frozenset({"seizure", "history_of_single_seizure"})
# ICD-10-CM is hierarchical: every code of category G40 "Epilepsy and recurrent seizures" is an
# epilepsy diagnosis (domain.md §5 "G40.*"). The one place a code is matched by its category, and
# only after the exact codes above (so G40.009 stays "bect").
CONDITION_CATEGORIES: Final[tuple[tuple[str, str, str], ...]] = ((ICD10CM, "G40.", "epilepsy"), (ICD10CM, "G40", "epilepsy"))

# --- Medications ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Product:
    """A levetiracetam product: RxNorm clinical drug with its strength and form (domain.md §2, §5)."""

    code: str
    display: str
    form: str  # "tablet", "solution", "xr-tablet"
    strength_mg: float  # per tablet, or per mL for the solution
    per: str  # "tablet" or "mL"


LEV_INGREDIENT: Final = Concept("levetiracetam", RXNORM, "114477", "levetiracetam", verify=True)
LEV_ATC: Final = Concept("levetiracetam", ATC, "N03AX14", "levetiracetam")
LEV_PRODUCTS: Final[tuple[Product, ...]] = (
    Product("311288", "levetiracetam 250 MG Oral Tablet", "tablet", 250.0, "tablet"),
    Product("311289", "levetiracetam 500 MG Oral Tablet", "tablet", 500.0, "tablet"),
    Product("311290", "levetiracetam 750 MG Oral Tablet", "tablet", 750.0, "tablet"),
    Product("387003", "levetiracetam 1000 MG Oral Tablet", "tablet", 1000.0, "tablet"),
    Product("403884", "levetiracetam 100 MG/ML Oral Solution", "solution", 100.0, "mL"),
    Product("807832", "24 HR levetiracetam 500 MG Extended Release Oral Tablet", "xr-tablet", 500.0, "tablet"),
    Product("846378", "24 HR levetiracetam 750 MG Extended Release Oral Tablet", "xr-tablet", 750.0, "tablet"),
)
LEV_PRODUCT_BY_CODE: Final[dict[str, Product]] = {p.code: p for p in LEV_PRODUCTS}

# Other anti-seizure medicines for the multi-hot "current AEDs" feature (published state, §1).
# RxNorm ingredient codes are not listed in domain.md: marked verify; ATC codes are WHO's.
ASM_INGREDIENTS: Final[tuple[Concept, ...]] = (
    LEV_INGREDIENT,
    LEV_ATC,
    Concept("valproate", RXNORM, "11118", "valproic acid", verify=True),
    Concept("valproate", ATC, "N03AG01", "valproic acid"),
    Concept("carbamazepine", RXNORM, "2002", "carbamazepine", verify=True),
    Concept("carbamazepine", ATC, "N03AF01", "carbamazepine"),
    Concept("oxcarbazepine", RXNORM, "32624", "oxcarbazepine", verify=True),
    Concept("oxcarbazepine", ATC, "N03AF02", "oxcarbazepine"),
    Concept("lamotrigine", RXNORM, "28439", "lamotrigine", verify=True),
    Concept("lamotrigine", ATC, "N03AX09", "lamotrigine"),
    Concept("topiramate", RXNORM, "38404", "topiramate", verify=True),
    Concept("topiramate", ATC, "N03AX11", "topiramate"),
    Concept("clobazam", RXNORM, "21241", "clobazam", verify=True),
    Concept("clobazam", ATC, "N05BA09", "clobazam"),
    Concept("sulthiame", ATC, "N03AX03", "sultiame"),
)
# The multi-hot vocabulary, in a fixed order (part of the feature schema).
ASM_KEYS: Final[tuple[str, ...]] = (
    "levetiracetam", "valproate", "carbamazepine", "oxcarbazepine", "lamotrigine", "topiramate",
    "clobazam", "sulthiame",
)


def _index(concepts: tuple[Concept, ...]) -> dict[tuple[str, str], Concept]:
    table: dict[tuple[str, str], Concept] = {}
    for concept in concepts:
        if (concept.system, concept.code) in table:
            raise ValueError(f"duplicate code {concept.system}|{concept.code}")
        table[(concept.system, concept.code)] = concept
    return table


OBSERVATION_BY_CODING: Final = _index(OBSERVATIONS)
CONDITION_BY_CODING: Final = _index(CONDITIONS)
ASM_BY_CODING: Final = _index(ASM_INGREDIENTS)


def concept_for(codeable: object, table: dict[tuple[str, str], Concept]) -> Concept | None:
    """The first concept of ``table`` matching a coding of a CodeableConcept dict, on exact (system, code)."""
    if not isinstance(codeable, dict):
        return None
    codings = codeable.get("coding")
    for coding in codings if isinstance(codings, list) else []:
        if not isinstance(coding, dict):
            continue
        system, code = coding.get("system"), coding.get("code")
        if isinstance(system, str) and isinstance(code, str):
            # The table's keys are trimmed: a code found as written is the one found trimmed.
            concept = table.get((system, code))
            if concept is None:
                trimmed_system, trimmed_code = system.strip(), code.strip()
                if trimmed_system != system or trimmed_code != code:
                    concept = table.get((trimmed_system, trimmed_code))
            if concept is not None:
                return concept
    return None


def condition_key(codeable: object) -> str | None:
    """The condition key of a CodeableConcept: an exact code of :data:`CONDITIONS`, else an ICD-10-CM G40 code."""
    concept = concept_for(codeable, CONDITION_BY_CODING)
    if concept is not None:
        return concept.key
    codings = codeable.get("coding") if isinstance(codeable, dict) else None
    for item in codings if isinstance(codings, list) else []:
        system, code = (item.get("system"), item.get("code")) if isinstance(item, dict) else (None, None)
        if isinstance(system, str) and isinstance(code, str):
            for category_system, prefix, key in CONDITION_CATEGORIES:
                if system.strip() == category_system and (code.strip().startswith(prefix) if prefix.endswith(".") else code.strip() == prefix):
                    return key
    return None


def coding(concept: Concept) -> dict[str, str]:
    """A FHIR Coding dict for a concept."""
    return {"system": concept.system, "code": concept.code, "display": concept.display}


def observation_concept(key: str) -> Concept:
    """The primary (first-listed) observation concept for a project key, used when emitting."""
    for concept in OBSERVATIONS:
        if concept.key == key:
            return concept
    raise KeyError(key)
