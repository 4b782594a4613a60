"""Training never reads an unreadable levetiracetam dose as 0 mg: such visits end the patient's trajectory."""

from __future__ import annotations

from datetime import date

from fhir_mapping.build import build_timeline
from tests.fhir_mapping import factory as f
from training.dataset import visit_table

DAYS = (date(2020, 1, 6), date(2020, 4, 6), date(2020, 7, 6))


def _timeline(readable: bool):
    resources = [f.patient()] + [f.encounter(f"e{i}", d) for i, d in enumerate(DAYS)]
    resources += [f.count(f"c{i}", d, 1, eid=f"e{i}") for i, d in enumerate(DAYS)]
    order = f.lev_order("m0", 500.0, DAYS[1])
    if not readable:
        order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] = {"value": 2, "unit": "scoop"}
    return build_timeline([*resources, order])


def test_unreadable_dose_cuts_the_trajectory() -> None:
    """From the visit whose decided dose cannot be read, no visit enters the table, and the count is kept."""
    clean = visit_table([_timeline(readable=True)])
    cut = visit_table([_timeline(readable=False)])
    assert len(clean) == 3 and clean.unreadable_visits == 0
    assert list(clean.actions) == [0, 4, 4]  # 0 g, then 0.5 g decided at the second visit
    assert len(cut) == 1 and cut.unreadable_visits == 2
    assert list(cut.actions) == [0] and cut.next_index[0] == -1
