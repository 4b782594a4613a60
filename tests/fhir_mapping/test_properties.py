"""Property tests: emitted orders read back to the same dose; corrupted input never raises."""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

import numpy as np
from fhir.resources.R4B.medicationrequest import MedicationRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_mapping import codes
from fhir_mapping.build import build_timeline, build_timelines
from fhir_mapping.dosing import DOSE_CLASSES_MG, dose_class_of
from fhir_mapping.emit import medication_request
from fhir_mapping.features import FEATURE_SPEC, state_matrix
from fhir_mapping.inputs import collect_resources
from fhir_mapping.medication import NormalisedDose, normalise_medication_request
from fhir_mapping.problems import Problem
from tests.fhir_mapping import factory as f

POSITIVE_CLASSES = st.integers(min_value=1, max_value=len(DOSE_CLASSES_MG) - 1)


@settings(max_examples=150, deadline=None)
@given(dose_class=POSITIVE_CLASSES, weight=st.floats(min_value=3.0, max_value=120.0), age=st.floats(min_value=0.1, max_value=17.9), prefer_xr=st.booleans())
def test_emitted_order_reads_back_to_the_same_daily_dose(dose_class: int, weight: float, age: float, prefer_xr: bool) -> None:
    """For any dose class, weight and age, the emitted MedicationRequest parses back to the same mg/day and class."""
    mg = DOSE_CLASSES_MG[dose_class]
    resource = medication_request("p", mg, weight_kg=weight, age_years=age, authored_on=date(2024, 1, 1), prefer_xr=prefer_xr)
    read = normalise_medication_request(resource)
    assert isinstance(read, NormalisedDose), read
    assert abs(read.mg_per_day - mg) < 1e-6
    assert dose_class_of(read.mg_per_day) == dose_class
    assert read.product_code == resource["medicationCodeableConcept"]["coding"][0]["code"]


@settings(max_examples=40, deadline=None)
@given(dose_class=POSITIVE_CLASSES, weight=st.floats(min_value=3.0, max_value=120.0), age=st.floats(min_value=0.1, max_value=17.9), prefer_xr=st.booleans())
def test_emitted_order_is_valid_r4(dose_class: int, weight: float, age: float, prefer_xr: bool) -> None:
    """Every emitted MedicationRequest validates against the fhir.resources R4B model."""
    resource = medication_request("p", DOSE_CLASSES_MG[dose_class], weight_kg=weight, age_years=age, authored_on=date(2024, 1, 1), prefer_xr=prefer_xr, encounter_id="e1", note="decision support")
    model = MedicationRequest.model_validate(resource)
    assert model.dosageInstruction[0].doseAndRate[0].doseQuantity.value == resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"]
    assert json.loads(model.model_dump_json())["medicationCodeableConcept"]["coding"][0]["code"] == resource["medicationCodeableConcept"]["coding"][0]["code"]


JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**12, max_value=10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.just([]), st.just({}), st.just({"reference": "Patient/"}), st.just("2020-13-45"),
    st.just({"value": -3, "code": "{tbl}"}), st.just([{"coding": "x"}]),
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location inside a JSON value."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


BASE = [*f.history(visits=3, doses=(0.0, 500.0, 750.0)), f.quantity("w-lb", "weight", date(2020, 2, 1), 60.0, "[lb_av]")]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_corruption_only_ever_yields_typed_problems(data: st.DataObject) -> None:
    """Deleting or replacing any element of the input never raises; it only yields Problems."""
    resources = copy.deepcopy(BASE)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        locations = paths(resources)
        location = data.draw(st.sampled_from(locations))
        parent: Any = resources
        for step in location[:-1]:
            parent = parent[step]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[location[-1]]
        else:
            parent[location[-1]] = copy.deepcopy(data.draw(JUNK))  # never mutate a shared st.just value
    collected, problems = collect_resources({"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]})
    assert all(isinstance(p, Problem) for p in problems)
    for timeline in build_timelines(collected, as_of=date(2021, 1, 1)):
        assert all(isinstance(p, Problem) for p in timeline.problems)
        values, observed = state_matrix(timeline)
        assert values.shape == (len(timeline.visits), FEATURE_SPEC.dimension)
        assert np.array_equal(observed, ~np.isnan(values))
        assert not np.isinf(values).any()
    for resource in collected:
        if isinstance(resource, dict) and resource.get("resourceType") == "MedicationRequest":
            read = normalise_medication_request(resource)
            assert isinstance(read, NormalisedDose) or all(isinstance(p, Problem) for p in read)


def test_corruption_harness_reaches_the_mapping() -> None:
    """The uncorrupted base input maps cleanly, so the property above exercises real mapping."""
    timeline = build_timeline(BASE)
    assert len(timeline.visits) == 3 and timeline.problems == []
    assert timeline.visits[1].weight is not None and timeline.visits[1].weight.measured_on == date(2020, 4, 6)


@settings(max_examples=60, deadline=None)
@given(doses=st.lists(st.sampled_from(DOSE_CLASSES_MG), min_size=1, max_size=8))
def test_decided_dose_is_the_next_visits_dose_on_arrival(doses: list[float]) -> None:
    """For any dose history, each visit's decision is what the child takes on arrival at the next visit."""
    timeline = build_timeline(f.history(visits=len(doses), doses=tuple(doses)))
    assert [v.lev_mg_per_day for v in timeline.visits] == doses
    assert [v.lev_mg_per_day_before for v in timeline.visits] == [0.0, *doses[:-1]]
    assert timeline.problems == []


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6) | st.sampled_from(["mg", "mL", "{tbl}", "BID", "h", "#m", "active"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["value", "code", "unit", "frequency", "period", "periodUnit", "coding", "system", "reference", "doseQuantity",
                         "doseRange", "low", "high", "repeat", "timing", "doseAndRate", "numerator", "denominator", "strength", "ingredient",
                         "contained", "resourceType", "id", "sequence", "when", "boundsPeriod", "start", "end"]),
        children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dosage=JSON, medication=JSON)
def test_any_json_in_an_order_gives_a_dose_or_problems(dosage: Any, medication: Any) -> None:
    """Arbitrary JSON in dosageInstruction and the contained Medication never raises."""
    resource = {"resourceType": "MedicationRequest", "id": "x", "status": "active", "authoredOn": "2020-01-01",
                "medicationReference": {"reference": "#m"}, "dosageInstruction": dosage,
                "contained": [medication, {"resourceType": "Medication", "id": "m", "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "114477"}]}, "ingredient": medication}]}
    read = normalise_medication_request(resource)
    assert isinstance(read, NormalisedDose) or (read and all(isinstance(p, Problem) for p in read))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(["weight", "creatinine", "seizure_count_since_last_visit", "eeg", "seizure_last_3_months"]), value=JSON, when=JSON, encounter=JSON)
def test_any_json_in_an_observation_gives_values_or_problems(key: str, value: Any, when: Any, encounter: Any) -> None:
    """Arbitrary JSON in an Observation's value, date and encounter never raises while building."""
    observation = f.quantity("o", "weight", date(2021, 1, 4), 30.0)
    observation["code"] = {"coding": [{"system": codes.observation_concept(key).system, "code": codes.observation_concept(key).code}]}
    observation.update(valueQuantity=value, valueInteger=value, valueCodeableConcept=value, valueBoolean=value, effectiveDateTime=when, encounter=encounter)
    timeline = build_timeline([f.patient(), f.encounter("e0", date(2021, 1, 4)), observation], as_of=date(2021, 2, 1))
    assert all(isinstance(p, Problem) for p in timeline.problems)
    state_matrix(timeline)


NOTE_ALPHABET = st.sampled_from([*"abcdefghijklmnopqrstuvwxyz0123456789 .,;:!?-<>/\n", "seizure", "no ", "发作", "无", "近3个月", "次", "持续", "分钟", "months ago ", "free for "])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.lists(NOTE_ALPHABET, max_size=80).map("".join), raw=st.binary(max_size=200),
       content_type=st.sampled_from(["text/plain", "text/html", "text/markdown", "application/pdf", "text/plain; charset=latin-1", "text/plain; charset=bogus", ""]))
def test_any_note_text_or_bytes_maps_without_raising(text: str, raw: bytes, content_type: str) -> None:
    """Whatever a note holds (text, bytes, a content type), the mapping gives a timeline: items only of
    the kinds the visit holds, or a problem; never an exception."""
    from fhir_mapping.notes import ITEMS, read_text

    reading = read_text(text)
    assert set(reading.items) <= set(ITEMS)
    for payload in (text.encode("utf-8"), raw):
        resources = [f.patient(), f.encounter("e0", date(2021, 1, 4)), f.document("d", date(2021, 1, 4), payload, content_type=content_type or "text/plain", eid="e0")]
        if not content_type:
            del resources[2]["content"][0]["attachment"]["contentType"]
        timeline = build_timeline(resources)
        visit = timeline.visits[0]
        assert visit.seizure_since_last_visit in (None, True, False)
        assert visit.seizure_count_since_last_visit is None or visit.seizure_count_since_last_visit >= 0
        assert visit.seizure_duration_class in (None, 0, 1, 2, 3)
        state_matrix(timeline)
