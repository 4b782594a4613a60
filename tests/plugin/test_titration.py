"""Cards say how to reach a distant dose within the label's titration steps (±10 mg/kg BID every 2 weeks)."""

from __future__ import annotations

from fhir_mapping.dosing import DOSE_CLASSES_MG
from plugin.decide import decide
from plugin.gather import Gathered
from tests.plugin.fixtures import FakeModel, patient_resources

REPORT = "https://cds.example.org/models/current"


def _detail(favour: int, mg_per_dose: float) -> str:
    prefetch = patient_resources(weight_kg=25.0, lev_mg_per_dose=mg_per_dose)
    outcome = decide("patient-view", {"patientId": "p1"}, Gathered(values=prefetch),
                     FakeModel("m", adversarial=False, favour=favour), REPORT)
    return str(outcome.cards[0]["detail"])


def test_large_increase_is_given_in_steps() -> None:
    """From 500 to 1500 mg/day at 25 kg (steps of 500 mg/day every 2 weeks): two steps over about 4 weeks."""
    detail = _detail(DOSE_CLASSES_MG.index(1500.0), 250)
    assert "**Titration:** a increase" not in detail
    assert "increase of 1000 mg/day" in detail and "in 2 steps over about 4 weeks" in detail


def test_stopping_from_a_high_dose_is_a_taper() -> None:
    """Stopping 1500 mg/day at 25 kg takes three steps, and the card says not to stop abruptly."""
    detail = _detail(0, 750)
    assert "decrease of 1500 mg/day" in detail and "in 3 steps" in detail
    assert "Do not stop levetiracetam abruptly" in detail


def test_one_step_change_needs_no_titration_note() -> None:
    """A change within one 2-week step (500 → 750 mg/day at 25 kg) carries no titration note."""
    assert "Titration" not in _detail(DOSE_CLASSES_MG.index(750.0), 250)
