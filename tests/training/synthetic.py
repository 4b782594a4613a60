"""Small synthetic visit arrays with a known structure, for fast tests of the algorithms."""

from __future__ import annotations

import numpy as np

from fhir_mapping import features
from fhir_mapping.dosing import N_DOSE_CLASSES, allowed_dose_mask
from training.dataset import Transitions, transitions_from_arrays


def synthetic_raw(n_patients: int = 40, visits: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Raw feature rows (NaN for some missing values) and the per-visit structure of a toy cohort."""
    rng = np.random.default_rng(seed)
    n = n_patients * visits
    d = features.FEATURE_SPEC.dimension
    values = rng.normal(size=(n, d))
    values[rng.random((n, d)) < 0.1] = np.nan
    observed = ~np.isnan(values)
    weight = rng.uniform(12.0, 60.0, size=n)
    values[:, features.FEATURE_SPEC.index("weight_kg")] = weight
    observed[:, features.FEATURE_SPEC.index("weight_kg")] = True
    masks = np.array([allowed_dose_mask(w, 8.0, None) for w in weight])
    preferred = np.clip((weight / 60.0 * 8).astype(int), 1, 8)
    actions = np.where(rng.random(n) < 0.7, preferred, rng.integers(0, N_DOSE_CLASSES, n))
    actions = np.where(masks[np.arange(n), actions], actions, 0)
    patient = np.repeat(np.arange(n_patients), visits)
    step = np.tile(np.arange(visits), n_patients)
    last = step == visits - 1
    next_index = np.where(last, -1, np.arange(n) + 1)
    rewards = np.where(last, 0.0, np.where(np.abs(actions - preferred) <= 1, 100.0, -100.0))
    dones = (step == visits - 2).astype(float)
    structure = {"actions": actions, "masks": masks, "rewards": rewards, "next_index": next_index, "dones": dones,
                 "patient": patient, "step": step}
    return values, observed, structure


def synthetic_transitions(n_patients: int = 40, visits: int = 6, seed: int = 0) -> tuple[Transitions, features.Imputation]:
    """Imputed synthetic transitions and the imputation fitted on them."""
    values, observed, s = synthetic_raw(n_patients, visits, seed)
    imputation = features.Imputation.fit(values, observed)
    states = imputation.transform(values, observed)
    data = transitions_from_arrays(states, s["actions"], s["masks"], s["rewards"], s["next_index"], s["dones"],
                                   s["patient"], s["step"])
    return data, imputation
