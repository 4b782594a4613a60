"""A model judged per FHIR dialect: the same held-out simulated children read from coded reports
(``epidose``), from EHR-shaped records (``ehr``) or a mix, with their truth unchanged.

Per dialect: top-1 agreement with the physicians' dose classes on the logged visits (the states as
``fhir_mapping`` reads them from that dialect, the choice masked by the label bounds and clinical
rails as the service masks it), the share of visits whose seizure since the last visit
is known, and the model's true value on the counterfactual replay (training.evaluation.simulated)
beside the physicians'. The physicians act on the true course, so their value has no dialect.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fhir_mapping import features
from fhir_mapping.build import build_timeline
from training.dataset import timeline_rails
from training.evaluation.simulated import cohort_setup, true_values_for_models
from training.inference import InferenceModel

REPORTED_DIALECTS = ("epidose", "ehr", "mixed")


def dialect_report(cohort_dir: str | Path, model: InferenceModel, patient_ids: Sequence[str], *, gamma: float,
                   dialects: Sequence[str] = REPORTED_DIALECTS) -> dict[str, Any] | None:
    """{"dialects": {dialect: figures}, "physician_true_value": …} on the given children, or None off the simulator."""
    setup = cohort_setup(cohort_dir)
    if setup is None:
        return None
    from training.simulator.cohort import simulate_cohort
    from training.simulator.fhir import child_resources

    seed, n_patients, config = setup
    wanted = set(patient_ids)
    runs = [run for run in simulate_cohort(n_patients, seed, config) if run.child.patient_id in wanted]
    report: dict[str, Any] = {"children": len(runs), "dialects": {}}
    physician: float | None = None
    for dialect in dialects:
        agree = visits = known = 0
        for run in runs:
            timeline = build_timeline(child_resources(run, dialect=dialect), run.child.patient_id)
            for index, visit in enumerate(timeline.visits):
                values, observed = features.state_row(timeline, index)
                # The mask the service uses: label bounds and clinical rails.
                choice, _, _ = model.recommend(values, observed, timeline_rails(timeline, index).allowed)
                agree += choice == run.visits[index].dose_class
                known += visit.seizure_since_last_visit is not None
                visits += 1
        values_ = true_values_for_models(cohort_dir, {"model": model}, patient_ids, gamma=gamma, include_physician=physician is None,
                                         include_oracle=False, dialect=dialect)
        figures: dict[str, Any] = {"visits": visits, "agreement": agree / visits if visits else None,
                                   "seizure_since_last_visit_known": known / visits if visits else None}
        if values_ is not None:
            figures["true_value"] = values_["model"]["value"]
            if "physician" in values_:
                physician = values_["physician"]["value"]
        report["dialects"][dialect] = figures
    report["physician_true_value"] = physician
    return report
