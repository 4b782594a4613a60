"""Transitions from timelines: the published reward, masks, last visits, patient-level splits."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from fhir_mapping.dosing import allowed_dose_mask, dose_class_of
from fhir_mapping.timeline import LevOrder, Measurement, PatientTimeline, Visit
from training.dataset import build_dataset, split_patients, visit_table
from training.reward import visit_reward


def _timeline(pid: str, n: int, seizures: list[bool | None]) -> PatientTimeline:
    start = date(2020, 1, 1)
    visits = []
    for i in range(n):
        day = start + timedelta(days=90 * i)
        visits.append(Visit(
            date=day, age_years=8.0 + i / 4, weight=Measurement(25.0 + i, day, 0),
            seizure_since_last_visit=seizures[i], seizure_last_3_months=seizures[i], seizure_last_6_months=None,
            lev=LevOrder(250.0 * (i + 1), f"MedicationRequest/{pid}-{i}", "active"),
            lev_before=None if i == 0 else LevOrder(250.0 * i, f"MedicationRequest/{pid}-{i - 1}", "active"),
        ))
    return PatientTimeline(pid, birth_date=date(2012, 1, 1), visits=visits)


def test_reward_is_the_published_weighted_sum():
    """R = 0.5·R1 + 0.4·R2 + 0.1·R3 with +100 seizure-free, −100 seizure and 0 unknown."""
    visit = Visit(date(2020, 1, 1), seizure_since_last_visit=True, seizure_last_3_months=False, seizure_last_6_months=None)
    assert visit_reward(visit) == 0.5 * -100 + 0.4 * 100 + 0.1 * 0


def test_visit_table_reads_action_reward_from_next_visit_and_masks():
    """Each visit's action is the decided dose class, its reward the next visit's reports; the last has none."""
    timeline = _timeline("a", 3, [True, False, True])
    table = visit_table([timeline])
    assert table.actions.tolist() == [dose_class_of(250.0), dose_class_of(500.0), dose_class_of(750.0)]
    assert table.rewards.tolist() == [90.0, -90.0, 0.0]
    assert table.next_index.tolist() == [1, 2, -1]
    assert table.dones.tolist() == [0.0, 1.0, 0.0]
    visit = timeline.visits[1]
    assert table.masks[1].tolist() == list(allowed_dose_mask(visit.weight_kg, visit.age_years, visit.egfr))


def test_split_is_by_patient_fixed_by_seed_and_order_free():
    """The same seed gives the same disjoint patient split whatever the input order."""
    ids = [f"p{i}" for i in range(50)]
    first = split_patients(ids, seed=4)
    second = split_patients(list(reversed(ids)), seed=4)
    assert first == second
    assert split_patients(ids, seed=5) != first
    assert sorted(first["train"] + first["validation"] + first["test"]) == sorted(ids)
    assert not set(first["train"]) & set(first["test"])


def test_dataset_imputation_uses_training_patients_only():
    """The imputation means come from the training split: changing a test patient's values leaves them unchanged."""
    timelines = [_timeline(f"p{i}", 3, [True, None, False]) for i in range(12)]
    table = visit_table(timelines)
    dataset = build_dataset(table, seed=0)
    test_patient = dataset.splits["test"][0]
    rows = np.flatnonzero(table.patient == table.patient_ids.index(test_patient))
    table.values[rows] = 1e6
    again = build_dataset(table, seed=0)
    assert np.allclose(again.imputation.means, dataset.imputation.means)
    assert len(dataset.train.transition_rows) == 2 * len(dataset.splits["train"])


def test_timeline_mask_keeps_an_earlier_low_egfr_in_force():
    """A reduced eGFR measured at an earlier visit still limits the doses when the current visit has none."""
    from training.dataset import timeline_label_mask

    timeline = _timeline("r", 2, [True, True])
    timeline.visits[0].egfr = 35.0
    timeline.visits[1].egfr = None
    visit = timeline.visits[1]
    assert sum(timeline_label_mask(timeline, 1)) < sum(allowed_dose_mask(visit.weight_kg, visit.age_years, None))
    assert timeline_label_mask(timeline, 1) == allowed_dose_mask(visit.weight_kg, visit.age_years, 35.0)


def test_the_table_mask_is_the_label_bounds_and_the_clinical_rails():
    """The training mask is the rails' mask (here: no start after a single seizure); the label mask is kept beside it."""
    from fhir_mapping.rails import clinical_rails, facts_at
    from training.dataset import timeline_bounds, timeline_mask

    timeline = _timeline("s", 3, [True, False, True])
    table = visit_table([timeline])
    assert table.label_masks is not None
    visit = timeline.visits[0]
    assert table.label_masks[0].tolist() == list(allowed_dose_mask(visit.weight_kg, visit.age_years, None))
    assert table.masks[0].tolist() == [True] + [False] * 11  # one seizure so far, not on levetiracetam: no start
    assert table.masks[0].tolist() == list(timeline_mask(timeline, 0))
    for i in range(3):
        assert table.masks[i].tolist() == list(clinical_rails(facts_at(timeline, i), timeline_bounds(timeline, i)).allowed)
        assert not (table.masks[i] & ~table.label_masks[i]).any()
    subset = table.subset(["s"])
    assert subset.label_masks is not None and (subset.label_masks == table.label_masks).all()


def test_loading_a_cohort_a_patient_at_a_time_gives_the_table_of_the_whole_input(tmp_path):
    """load_data maps one patient's resources at a time; a mixed-dialect cohort read whole gives the same
    timelines, problems, physician probabilities and visit table (every array)."""
    from fhir_mapping.build import build_timelines
    from fhir_mapping.inputs import collect_resources
    from training.dataset import load_data
    from training.simulator.cohort import write_cohort

    write_cohort(tmp_path, 24, 3, dialect="mixed")
    with (tmp_path / "ndjson" / "Observation.ndjson").open("a") as observations:
        observations.write("{broken\n")
    loaded = load_data(tmp_path)
    resources, problems = collect_resources(tmp_path / "ndjson")
    timelines = build_timelines(resources)
    assert [repr(t) for t in loaded.timelines] == [repr(t) for t in timelines]
    assert loaded.problems == problems and len(problems) == 1
    assert loaded.behaviour and loaded.is_cohort
    streamed, reference = visit_table(loaded.timelines, loaded.behaviour), visit_table(timelines, loaded.behaviour)
    assert len(streamed) > 24 and streamed.behaviour_probs is not None
    assert streamed.patient_ids == reference.patient_ids and streamed.dates == reference.dates
    for name in ("patient", "step", "values", "observed", "actions", "masks", "label_masks", "rewards", "next_index",
                 "dones", "behaviour_probs"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(reference, name), err_msg=name)
