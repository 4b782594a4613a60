"""EHR-shaped charts on a real FHIR server: the seizure history in notes and encounters reaches the card.

Children of ``epidose cohort --dialect ehr`` are loaded into SEKMET; the service's prefetch templates
are evaluated against it the way an EHR does (``plugin.sandbox.prefetch_from``), or left to the
service's own FHIR fallback, and the card says where the seizure history came from.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from flask import Flask

from hooks import service_definitions
from plugin.cli import main
from plugin.note_binaries import MAX_BINARY_BYTES
from plugin.sandbox import prefetch_from
from tests.plugin.cardspec import check_response

pytestmark = pytest.mark.fhir_server
PV = "/cds-services/epidose-patient-view"
EPIDOSE_SYSTEM = "https://epidose.org/fhir/CodeSystem/epidose"
SEIZURE_EVENT_CODES = {"91175000", "703151001", "R56.9"}  # as fhir_mapping.codes: a seizure, not a diagnosis
CURRENT_DAYS = 60  # the latest visit must be recent for the card to rest on it


def _seizure_history_only_in_notes_and_encounters(bundle: dict[str, Any]) -> bool:
    """No coded seizure report, no questionnaire answer, no seizure Condition; a recent visit with a weight."""
    resources = [e["resource"] for e in bundle["entry"]]
    for resource in resources:
        kind = resource["resourceType"]
        codings = [c for c in (resource.get("code") or {}).get("coding", [])]
        if kind == "QuestionnaireResponse":
            return False
        if kind == "Observation" and any(c.get("system") == EPIDOSE_SYSTEM for c in codings):
            return False
        if kind == "Condition" and any(c.get("code") in SEIZURE_EVENT_CODES for c in codings):
            return False
    encounters = sorted((r["period"]["start"], r["id"]) for r in resources if r["resourceType"] == "Encounter")
    if not encounters or encounters[-1][0] < (date.today() - timedelta(days=CURRENT_DAYS)).isoformat():
        return False
    latest = encounters[-1][1]
    has_weight = any(r["resourceType"] == "Observation" and (r.get("encounter") or {}).get("reference") == f"Encounter/{latest}"
                     and any(c.get("code") == "29463-7" for c in r["code"]["coding"]) for r in resources)
    has_note = any(r["resourceType"] == "DocumentReference" for r in resources)
    return has_weight and has_note


def _with_notes_as_binaries(bundle: dict[str, Any]) -> dict[str, Any]:
    """The same chart with every note's text moved to a Binary that the DocumentReference names by url."""
    entries = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "DocumentReference":
            for index, content in enumerate(resource["content"]):
                attachment = content["attachment"]
                binary_id = f"{resource['id']}-{index}"
                entries.append({"resource": {"resourceType": "Binary", "id": binary_id,
                                             "contentType": attachment["contentType"], "data": attachment["data"]},
                                "request": {"method": "PUT", "url": f"Binary/{binary_id}"}})
                content["attachment"] = {"contentType": attachment["contentType"], "url": f"Binary/{binary_id}"}
        entries.append(entry)
    return {**bundle, "entry": entries}


def _post(base: str, path: str, resource: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{base}{path}", json=resource, headers={"Content-Type": "application/fhir+json"}, timeout=30)
    assert response.status_code < 300, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture(scope="module")
def ehr_children(fhir_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """(server, inline child, Binary child): two ehr-dialect children whose seizure history is only in
    notes and encounters, the second with its notes' text kept as Binaries."""
    cohort = tmp_path_factory.mktemp("ehr-cohort") / "cohort"
    end = (date.today() - timedelta(days=7)).isoformat()
    result = CliRunner().invoke(main, ["cohort", "--dialect", "ehr", "--patients", "40", "--seed", "5",
                                       "--end-date", end, "--out", str(cohort)])
    assert result.exit_code == 0, result.output
    chosen = []
    for path in sorted((cohort / "bundles").glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        if _seizure_history_only_in_notes_and_encounters(bundle):
            chosen.append((path.stem, bundle))
    assert len(chosen) >= 2, "the ehr cohort should hold children recorded in notes and encounters only"
    (inline_id, inline), (binary_id, binary) = chosen[:2]
    _post(fhir_server, "", inline)
    _post(fhir_server, "", _with_notes_as_binaries(binary))
    yield fhir_server, inline_id, binary_id


def _call(make_app: Callable[..., Flask], base: str, patient: str, prefetch: dict[str, Any] | None) -> dict[str, Any]:
    client = make_app(response_cache_size=0).test_client()
    body: dict[str, Any] = {"hook": "patient-view", "hookInstance": f"test-{patient}",
                            "context": {"userId": "Practitioner/dr", "patientId": patient}, "fhirServer": base}
    if prefetch is not None:
        body["prefetch"] = prefetch
    response = client.post(PV, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    cards = check_response(response.get_json())
    assert len(cards) == 1
    return cards[0]


def _seizure_history(card: dict[str, Any]) -> str:
    line = next((line for line in card["detail"].splitlines() if line.startswith("**Seizure history:**")), None)
    assert line is not None, card["detail"]
    return line


def _templates() -> dict[str, str]:
    return next(d for d in service_definitions() if d["id"] == "epidose-patient-view")["prefetch"]


def test_prefetch_templates_bring_the_notes_and_encounters(make_app: Callable[..., Flask],
                                                           ehr_children: tuple[str, str, str]) -> None:
    """Evaluated as an EHR evaluates them, the templates carry notes and encounters: the card's seizure
    history is read from note text (and no other source); withheld, it is not recorded and the card links
    the questionnaire to record it."""
    base, patient, _ = ehr_children
    prefetch = prefetch_from(base, _templates(), {"patientId": patient}, None)
    assert {"encounters", "notes", "questionnaires"} <= set(prefetch)
    assert prefetch["notes"]["entry"] and prefetch["encounters"]["entry"]
    card = _call(make_app, base, patient, prefetch)
    history = _seizure_history(card)
    assert "note text (DocumentReference/" in history, history
    assert not any(word in history for word in ("coded observations", "questionnaire", "conditions")), history
    assert not any("Questionnaire/bect-follow-up" in link["url"] for link in card["links"])
    assert card["extension"]["org.epidose.decision"]["action"] != "no-recommendation"
    assert "- Seizures in the last 3 months: " in card["detail"]  # the course the rails judged

    withheld = _call(make_app, base, patient, {**prefetch, "notes": None, "encounters": None})
    assert "not recorded" in _seizure_history(withheld)
    assert withheld["extension"]["org.epidose.decision"]["action"] == "no-recommendation"
    link = next(link for link in withheld["links"] if "questionnaire" in link["label"].lower())
    assert link["url"] == "http://localhost/fhir/Questionnaire/bect-follow-up"
    assert link["url"] in withheld["detail"]


def test_the_fhir_fallback_reads_the_same_history(make_app: Callable[..., Flask],
                                                  ehr_children: tuple[str, str, str]) -> None:
    """With no prefetch at all the service fetches every key itself and says the same about the history."""
    base, patient, _ = ehr_children
    prefetched = _call(make_app, base, patient, prefetch_from(base, _templates(), {"patientId": patient}, None))
    fetched = _call(make_app, base, patient, None)
    assert _seizure_history(fetched) == _seizure_history(prefetched)
    assert fetched["extension"] == prefetched["extension"]


def test_notes_kept_as_binaries_are_fetched(make_app: Callable[..., Flask], ehr_children: tuple[str, str, str]) -> None:
    """Notes whose text is a Binary on the FHIR server are read within the budget; one whose Binary is
    missing, one too large and one on another server are named problems, and the card is still answered."""
    base, _, patient = ehr_children
    subject = {"reference": f"Patient/{patient}"}
    too_large = _post(base, "/Binary", {"resourceType": "Binary", "contentType": "text/plain",
                                        "data": base64.b64encode(b"seizure " * (MAX_BINARY_BYTES // 8 + 1)).decode()})

    def note(url: str) -> dict[str, Any]:
        return _post(base, "/DocumentReference", {"resourceType": "DocumentReference", "status": "current", "subject": subject,
                                                  "date": "2020-01-01T09:00:00Z",
                                                  "content": [{"attachment": {"contentType": "text/plain", "url": url}}]})

    missing = note("Binary/no-such-binary")
    large = note(f"Binary/{too_large['id']}")
    elsewhere = note("https://other.example.org/fhir/Binary/abc")
    prefetch = prefetch_from(base, _templates(), {"patientId": patient}, None)
    card = _call(make_app, base, patient, prefetch)
    assert "note text (DocumentReference/" in _seizure_history(card)
    problems = {p["detail"].split(":", 1)[0]: p for p in card["extension"]["org.epidose.decision"]["problems"]
                if p["item"] == "a note's text"}
    assert set(problems) == {f"DocumentReference/{missing['id']}", f"DocumentReference/{large['id']}",
                             f"DocumentReference/{elsewhere['id']}"}
    assert "answered 404" in problems[f"DocumentReference/{missing['id']}"]["detail"]
    assert "too large" in problems[f"DocumentReference/{large['id']}"]["detail"]
    assert "not fetched" in problems[f"DocumentReference/{elsewhere['id']}"]["detail"]
    assert all(p["kind"] == "unreadable" for p in problems.values())

    # Without a FHIR server to ask, the same notes cannot be read: the history is not recorded.
    client = make_app(response_cache_size=0).test_client()
    body = {"hook": "patient-view", "hookInstance": "test-no-server",
            "context": {"userId": "Practitioner/dr", "patientId": patient}, "prefetch": prefetch}
    offline = check_response(client.post(PV, json=body).get_json())[0]
    assert "note text" not in _seizure_history(offline)


def test_templates_name_the_keys_the_charts_send() -> None:
    """Every service asks for encounters, notes and questionnaire answers, under the charts' key names."""
    chart = json.loads(next((Path(__file__).parents[1] / "clinical" / "charts").glob("*.json")).read_text(encoding="utf-8"))
    for definition in service_definitions():
        prefetch = definition["prefetch"]
        assert prefetch["encounters"].startswith("Encounter?patient={{context.patientId}}")
        assert prefetch["notes"].startswith("DocumentReference?patient={{context.patientId}}")
        assert prefetch["questionnaires"].startswith("QuestionnaireResponse?patient={{context.patientId}}")
        assert {"encounters", "notes"} <= set(chart["prefetch"]) <= set(prefetch)
