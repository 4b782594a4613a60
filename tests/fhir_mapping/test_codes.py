"""Every code-table entry, reviewed against this test's own copy (domain.md §5).

A wrong code (like a lactate feature mapped to an LDH code) or a changed display or unit fails
here loudly. Edit both tables only after checking the terminology source.
"""

from __future__ import annotations

from fhir_mapping import codes
from fhir_mapping.units import CANONICAL_UNIT, CONVERSIONS

L, R, S, ICD, A, P = codes.LOINC, codes.RXNORM, codes.SNOMED, codes.ICD10CM, codes.ATC, codes.EPIDOSE_SYSTEM

# (key, system, code, display, unit)
OBSERVATIONS = {
    ("weight", L, "29463-7", "Body weight", "kg"),
    ("weight", L, "3141-9", "Body weight Measured", "kg"),
    ("height", L, "8302-2", "Body height", "cm"),
    ("lev_level", L, "30471-7", "Levetiracetam [Mass/volume] in Serum or Plasma", "mg/L"),
    ("creatinine", L, "2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL"),
    ("alt", L, "1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L"),
    ("ast", L, "1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L"),
    ("wbc", L, "6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL"),
    ("hemoglobin", L, "718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL"),
    ("platelets", L, "777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL"),
    ("eeg", L, "11523-8", "EEG study", None),
    ("egfr", L, "50384-7", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by Creatinine-based formula (Schwartz)", "mL/min/{1.73_m2}"),
    ("seizure_count_since_last_visit", P, "seizure-count-since-last-visit", "Number of seizures since the last visit", None),
    ("seizure_last_3_months", P, "seizure-last-3-months", "Any seizure within the last 3 months", None),
    ("seizure_last_6_months", P, "seizure-last-6-months", "Any seizure within the last 6 months", None),
    ("seizure_duration_class", P, "seizure-duration-class", "Longest seizure duration since the last visit (ordinal class)", None),
    ("physical_exam_class", P, "physical-exam-class", "Physical and neurological examination class", None),
    ("physician_assessment", P, "physician-assessment", "Physician assessment of the course since the last visit", None),
    ("behaviour_adverse_effect", P, "behaviour-adverse-effect", "Behavioural adverse effect reported since the last visit", None),
    ("family_requests_treatment", P, "family-requests-treatment", "The family asks for daily anti-seizure treatment", None),
}

CONDITIONS = {
    ("bect", S, "44145005", "Benign rolandic epilepsy"),
    ("idiopathic_focal_epilepsy", S, "278510009", "Localization-related idiopathic epilepsy"),
    ("epilepsy", S, "84757009", "Epilepsy"),
    ("seizure_disorder", S, "128613002", "Seizure disorder"),
    ("seizure", S, "91175000", "Seizure"),
    ("bect", ICD, "G40.009", "Localization-related (focal) (partial) idiopathic epilepsy and epileptic syndromes with seizures of localized onset, not intractable, without status epilepticus"),
    ("bect", ICD, "G40.001", "Localization-related (focal) (partial) idiopathic epilepsy and epileptic syndromes with seizures of localized onset, not intractable, with status epilepticus"),
    ("bect", ICD, "G40.019", "Localization-related (focal) (partial) idiopathic epilepsy and epileptic syndromes with seizures of localized onset, intractable, without status epilepticus"),
    ("bect", ICD, "G40.011", "Localization-related (focal) (partial) idiopathic epilepsy and epileptic syndromes with seizures of localized onset, intractable, with status epilepticus"),
    ("abnormal_eeg", ICD, "R94.02", "Abnormal electroencephalogram [EEG]"),
    ("history_of_single_seizure", S, "703151001", "History of single seizure"),
    ("seizure", ICD, "R56.9", "Unspecified convulsions"),
}

# (RxNorm code, display, form, mg per unit, unit)
PRODUCTS = {
    ("311288", "levetiracetam 250 MG Oral Tablet", "tablet", 250.0, "tablet"),
    ("311289", "levetiracetam 500 MG Oral Tablet", "tablet", 500.0, "tablet"),
    ("311290", "levetiracetam 750 MG Oral Tablet", "tablet", 750.0, "tablet"),
    ("387003", "levetiracetam 1000 MG Oral Tablet", "tablet", 1000.0, "tablet"),
    ("403884", "levetiracetam 100 MG/ML Oral Solution", "solution", 100.0, "mL"),
    ("807832", "24 HR levetiracetam 500 MG Extended Release Oral Tablet", "xr-tablet", 500.0, "tablet"),
    ("846378", "24 HR levetiracetam 750 MG Extended Release Oral Tablet", "xr-tablet", 750.0, "tablet"),
}

INGREDIENTS = {
    ("levetiracetam", R, "114477", "levetiracetam"), ("levetiracetam", A, "N03AX14", "levetiracetam"),
    ("valproate", R, "11118", "valproic acid"), ("valproate", A, "N03AG01", "valproic acid"),
    ("carbamazepine", R, "2002", "carbamazepine"), ("carbamazepine", A, "N03AF01", "carbamazepine"),
    ("oxcarbazepine", R, "32624", "oxcarbazepine"), ("oxcarbazepine", A, "N03AF02", "oxcarbazepine"),
    ("lamotrigine", R, "28439", "lamotrigine"), ("lamotrigine", A, "N03AX09", "lamotrigine"),
    ("topiramate", R, "38404", "topiramate"), ("topiramate", A, "N03AX11", "topiramate"),
    ("clobazam", R, "21241", "clobazam"), ("clobazam", A, "N05BA09", "clobazam"),
    ("sulthiame", A, "N03AX03", "sultiame"),
}


def test_observation_codes_displays_and_units() -> None:
    """Every observation concept matches this table on key, system, code, display and unit."""
    assert {(c.key, c.system, c.code, c.display, c.unit) for c in codes.OBSERVATIONS} == OBSERVATIONS


def test_observation_units_convert_in_their_dimension() -> None:
    """Each observation's canonical unit is the canonical unit of its conversion row."""
    for concept in codes.OBSERVATIONS:
        if concept.dimension is not None:
            assert CANONICAL_UNIT[concept.dimension] == concept.unit, concept.key
            assert CONVERSIONS[concept.dimension][concept.unit] == 1.0


def test_condition_codes_and_displays() -> None:
    """Every condition concept matches this table."""
    assert {(c.key, c.system, c.code, c.display) for c in codes.CONDITIONS} == CONDITIONS


def test_levetiracetam_products() -> None:
    """Every levetiracetam product has the reviewed RxNorm code, display, form and strength."""
    assert {(p.code, p.display, p.form, p.strength_mg, p.per) for p in codes.LEV_PRODUCTS} == PRODUCTS


def test_anti_seizure_ingredients_and_multi_hot_keys() -> None:
    """Every ingredient code matches this table and every key is in the multi-hot vocabulary."""
    assert {(c.key, c.system, c.code, c.display) for c in codes.ASM_INGREDIENTS} == INGREDIENTS
    assert {key for key, *_ in INGREDIENTS} == set(codes.ASM_KEYS)


def test_answer_codes_have_displays() -> None:
    """Every project answer code has a display."""
    for answer in codes.EXAM_CLASSES + codes.ASSESSMENT_CLASSES + codes.DURATION_CLASSES + codes.EEG_RESULTS:
        assert codes.ANSWER_DISPLAYS[answer]


def test_lookup_is_exact_on_system_and_code() -> None:
    """The same code under another system matches nothing."""
    assert codes.concept_for({"coding": [{"system": L, "code": "2160-0"}]}, codes.OBSERVATION_BY_CODING).key == "creatinine"
    assert codes.concept_for({"coding": [{"system": R, "code": "2160-0"}]}, codes.OBSERVATION_BY_CODING) is None
    assert codes.concept_for({"coding": [{"code": "29463-7"}]}, codes.OBSERVATION_BY_CODING) is None
