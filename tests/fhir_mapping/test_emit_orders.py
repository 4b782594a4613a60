"""Orders the service writes: an updated draft keeps what the dose does not touch; uneven tablet splits read back."""

from __future__ import annotations

from datetime import date

from fhir.resources.R4B.medicationrequest import MedicationRequest

from fhir_mapping.emit import choose_regimen, medication_request, stopped_order, updated_order
from fhir_mapping.medication import normalise_medication_request

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _draft() -> dict:
    draft = medication_request("p1", 1000, weight_kg=30, age_years=9, authored_on=date(2026, 11, 30),
                               resource_id="d1", status="draft", intent="order", encounter_id="e1")
    draft.update({"category": [{"coding": [{"code": "outpatient"}]}], "requester": {"reference": "Practitioner/x"},
                  "reasonCode": [{"text": "BECT"}], "note": [{"text": "check adherence"}],
                  "dispenseRequest": {"expectedSupplyDuration": {"value": 28, "unit": "days", "code": "d"},
                                      "numberOfRepeatsAllowed": 1, "quantity": {"value": 56, "unit": "tablet"}}})
    return draft


def test_update_changes_the_dose_and_keeps_every_other_field() -> None:
    draft = _draft()
    updated = updated_order(draft, 1500, weight_kg=30, age_years=9)
    MedicationRequest.model_validate(updated)
    read = normalise_medication_request(updated)
    assert not isinstance(read, list) and read.mg_per_day == 1500
    for field in ("id", "status", "intent", "subject", "encounter", "authoredOn", "category", "requester",
                  "reasonCode", "note"):
        assert updated[field] == draft[field], field
    assert updated["dispenseRequest"]["expectedSupplyDuration"] == draft["dispenseRequest"]["expectedSupplyDuration"]
    assert updated["dispenseRequest"]["numberOfRepeatsAllowed"] == 1
    assert updated["dispenseRequest"]["quantity"]["value"] == 56  # 750 mg tablet twice daily for 28 days
    assert draft["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 1  # the draft itself untouched


def test_update_of_a_contained_medication_drops_the_unreferenced_medication() -> None:
    draft = _draft()
    del draft["medicationCodeableConcept"]
    draft["contained"] = [{"resourceType": "Medication", "id": "med",
                           "code": {"coding": [{"system": RXNORM, "code": "311289"}]}}]
    draft["medicationReference"] = {"reference": "#med"}
    updated = updated_order(draft, 1500, weight_kg=30, age_years=9)
    assert "contained" not in updated and "medicationReference" not in updated
    assert updated["medicationCodeableConcept"]["coding"][0]["system"] == RXNORM


def test_uneven_tablet_split_puts_the_larger_dose_in_the_evening_and_reads_back() -> None:
    regimen = choose_regimen(1250, 30, 9, prefer_tablets=True)
    assert (regimen.amount, regimen.evening_amount, regimen.product.strength_mg) == (2, 3, 250)
    assert choose_regimen(1250, 30, 9).unit == "mL"  # without a tablet history: the solution, equal doses
    order = medication_request("p1", 1250, weight_kg=30, age_years=9, prefer_tablets=True)
    MedicationRequest.model_validate(order)
    read = normalise_medication_request(order)
    assert not isinstance(read, list) and read.mg_per_day == 1250 and read.doses_per_day == 2


def test_stopped_order_keeps_the_order_as_written() -> None:
    draft = _draft()
    stopped = stopped_order(draft)
    assert stopped["status"] == "stopped" and draft["status"] == "draft"
    assert {k: v for k, v in stopped.items() if k != "status"} == {k: v for k, v in draft.items() if k != "status"}
