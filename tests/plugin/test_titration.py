"""Cards say how to reach a distant dose within the label's titration steps (±10 mg/kg BID every 2 weeks),
counted from the dose the child takes."""

from __future__ import annotations

from fhir_mapping.dosing import DOSE_CLASSES_MG
from plugin.decide import decide
from plugin.gather import Gathered
from tests.plugin.fixtures import FakeModel, child_chart

REPORT = "https://cds.example.org/models/current"
BREAKTHROUGH = ((200, 1), (100, 0), (10, 3))
SEIZURE_FREE_2Y = ((900, 2), (700, 0), (400, 0), (10, 0))


def _detail(favour_mg: float, lev_mg_per_day: float, visits: tuple[tuple[int, int], ...]) -> str:
    # The model clearly prefers one dose; the situation is chosen so the practice guidance points the same way
    # (a model against the guidance is not offered, see test_dose_cards).
    prefetch = child_chart(weight_kg=25.0, lev_mg_per_day=lev_mg_per_day, lev_days_ago=1000, visits=visits)
    model = FakeModel("m", adversarial=False, favour=DOSE_CLASSES_MG.index(favour_mg))
    outcome = decide("patient-view", {"patientId": "c1"}, Gathered(values=prefetch), model, REPORT)
    card = outcome.cards[0]
    assert card["extension"]["org.epidose.decision"]["source"] == "model", card["detail"]
    return str(card["detail"])


def test_large_increase_is_given_in_steps() -> None:
    """From 500 to 1500 mg/day at 25 kg (steps of 500 mg/day every 2 weeks): two steps over about 4 weeks."""
    detail = _detail(1500.0, 500, BREAKTHROUGH)
    assert "from the 500 mg/day taken, an increase of 1000 mg/day" in detail and "in 2 steps over about 4 weeks" in detail


def test_stopping_from_a_high_dose_is_a_taper() -> None:
    """Stopping 1500 mg/day at 25 kg, seizure-free 2 years, takes three steps; the card says not to stop abruptly."""
    detail = _detail(0.0, 1500, SEIZURE_FREE_2Y)
    assert "a decrease of 1500 mg/day" in detail and "in 3 steps" in detail
    assert "Do not stop levetiracetam abruptly" in detail


def test_one_step_change_needs_no_titration_note() -> None:
    """A change within one 2-week step (500 → 750 mg/day at 25 kg) carries no titration note."""
    assert "Titration" not in _detail(750.0, 500, BREAKTHROUGH)
