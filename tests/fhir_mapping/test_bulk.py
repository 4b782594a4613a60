"""Timelines of an export read one patient at a time are those of the whole input read at once."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from fhir_mapping.build import build_timelines
from fhir_mapping.bulk import index_patients
from fhir_mapping.inputs import collect_resources


def whole(*paths: Path) -> tuple[list[str], list[str]]:
    """Every resource in memory at once: the reference reading."""
    resources, problems = collect_resources(*paths)
    return [repr(t) for t in build_timelines(resources)], [repr(p) for p in problems]


def streamed(*paths: Path) -> tuple[list[str], list[str]]:
    index = index_patients(*paths)
    return [repr(t) for t in index.timelines()], [repr(p) for p in index.problems]


def line(resource: dict) -> str:
    return json.dumps(resource, ensure_ascii=False)


def patient(pid: str, birth: str = "2012-03-04") -> dict:
    return {"resourceType": "Patient", "id": pid, "birthDate": birth, "gender": "female"}


def weight(oid: str, pid: str, day: str, kg: float) -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": day,
            "valueQuantity": {"value": kg, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}


def encounter(eid: str, pid: str, day: str) -> dict:
    return {"resourceType": "Encounter", "id": eid, "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{pid}"}, "period": {"start": day}}


def order(mid: str, pid: str, day: str, mg: float) -> dict:
    return {"resourceType": "MedicationRequest", "id": mid, "status": "active", "intent": "order",
            "medicationReference": {"reference": "Medication/lev"}, "subject": {"reference": f"Patient/{pid}"},
            "authoredOn": day,
            "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                                   "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}]}]}


LEVETIRACETAM = {"resourceType": "Medication", "id": "lev",
                 "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "114477"}]}}


@pytest.fixture(scope="module")
def mixed_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.simulator.cohort import write_cohort

    folder = tmp_path_factory.mktemp("mixed")
    write_cohort(folder, 30, 7, dialect="mixed")
    return folder / "ndjson"


def test_a_mixed_dialect_cohort_maps_to_the_same_timelines(mixed_cohort: Path) -> None:
    """Both chart dialects (coded reports; Conditions, notes and sparse labs) give the same timelines and problems."""
    timelines, problems = streamed(mixed_cohort)
    assert len(timelines) == 30
    assert (timelines, problems) == whole(mixed_cohort)


def test_every_cohort_line_is_found_again_by_offset(mixed_cohort: Path) -> None:
    """No resource of the cohort is held as a dict: each is its line's place (what keeps memory to one patient)."""
    index = index_patients(mixed_cohort)
    assert {path.name for path in index.files} == {p.name for p in mixed_cohort.glob("*.ndjson")}
    entries = [entry for group in index.groups.values() for entry in group]
    assert entries and all(isinstance(entry, int) for entry in entries)
    first = next(iter(index.groups))
    assert [r["id"] for r in index.resources(first)] == [r["id"] for r in collect_resources(mixed_cohort)[0]
                                                          if first in (r.get("id"), r.get("subject", {}).get("reference", "")[8:])]


def test_odd_exports_read_as_the_whole_input_is_read(tmp_path: Path) -> None:
    """BOM, CRLF, blank and broken lines, Bundles and lists on a line, repeats across files, resources
    without a subject, a line separator inside a string, JSON files and a file that is not UTF-8."""
    folder = tmp_path / "export"
    (folder / "ndjson").mkdir(parents=True)
    (folder / "ndjson" / "Patient.ndjson").write_bytes(
        codecs.BOM_UTF8 + (line(patient("a")) + "\r\n\r\n" + line(patient("b", "2014-05")) + "\r\n").encode())
    (folder / "ndjson" / "Observation.ndjson").write_text(
        line(weight("w1", "a", "2020-01-02", 20.5)) + "\n"
        + "{not json\n"
        + line({"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": weight("w2", "b", "2020-02-03", 18.0)}, {"fullUrl": "urn:uuid:w3", "resource": {**weight("w3", "a", "2020-03-04", 21.0), "id": ""}}]}) + "\n"
        + line([weight("w4", "a", "2020-04-05", 21.5), encounter("e9", "b", "2020-04-05")]) + "\n"
        + line({**weight("w1", "b", "2020-05-06", 99.0)}) + "\n"  # a repeat of Observation/w1: the first one is kept
        + line({**weight("w5", "a", "2020-06-07", 22.0), "subject": {"reference": "https://ehr.example/fhir/Patient/a/_history/2"}}) + "\n"
        + "   \n" + line({"resourceType": "Observation", "id": "nobody", "status": "final"}))  # no final newline
    (folder / "ndjson" / "Encounter.ndjson").write_text(
        "\n".join(line(encounter(f"e{i}", "ab"[i % 2], f"2020-0{i + 1}-02")) for i in range(4)) + "\n")
    (folder / "ndjson" / "MedicationRequest.ndjson").write_text(
        line(order("m1", "a", "2020-01-02", 250)) + "\n" + line(order("m2", "b", "2020-02-03", 200)) + "\n")
    (folder / "ndjson" / "DocumentReference.ndjson").write_text(line({
        "resourceType": "DocumentReference", "id": "d1", "status": "current", "subject": {"reference": "Patient/a"},
        "date": "2020-03-02T10:00:00Z",
        "content": [{"attachment": {"contentType": "text/plain", "data": "U2VpenVyZSBmcmVlLg=="}}],
        "description": "follow-up\u2028visit"}) + "\n")  # inside a JSON string: not a line break
    (folder / "ndjson" / "Condition.ndjson").write_bytes(b'{"resourceType": "Condition", "id": "\xff"}\n')
    (folder / "Medication.json").write_text(json.dumps({"resourceType": "Bundle", "entry": [{"resource": LEVETIRACETAM}]}))
    timelines, problems = streamed(folder)
    assert (timelines, problems) == whole(folder)
    assert len(timelines) == 2 and len(problems) == 2  # the broken line and the file that is not UTF-8
    index = index_patients(folder)
    assert {p.name for p in index.files} == {"Patient.ndjson", "Observation.ndjson", "Encounter.ndjson", "MedicationRequest.ndjson",
                                                "DocumentReference.ndjson"}


def test_resources_without_a_subject_join_the_only_patient(tmp_path: Path) -> None:
    """As when the input is read whole: with one patient, a resource that names none is that patient's."""
    data = tmp_path / "one.ndjson"
    data.write_text("\n".join(line(r) for r in (
        patient("solo"), {**weight("w", "x", "2021-01-01", 30.0), "subject": None}, encounter("e", "solo", "2021-01-01"))))
    assert streamed(data) == whole(data)
    assert "30.0" in streamed(data)[0][0]


def test_each_patient_is_read_only_when_its_timeline_is_built(mixed_cohort: Path) -> None:
    """The lines of a patient are parsed again only when that patient's timeline is made: nothing of the
    other patients is held while one is mapped (what keeps a large cohort's memory to one patient)."""
    index = index_patients(mixed_cohort)
    parsed: list[str] = []
    reading = index.loads

    def counting(text: str) -> dict:
        resource = reading(text)
        parsed.append(resource["resourceType"])
        return resource

    index.loads = counting
    sizes = {pid: len(entries) for pid, entries in index.groups.items()}
    timelines = index.timelines()
    first = next(timelines)
    assert len(parsed) == sizes[first.patient_id]
    second = next(timelines)
    assert len(parsed) == sizes[first.patient_id] + sizes[second.patient_id]
    assert sum(1 for _ in timelines) == len(sizes) - 2 and len(parsed) == sum(sizes.values())
