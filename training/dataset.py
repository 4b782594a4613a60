"""Transitions for offline reinforcement learning, built from :class:`PatientTimeline` objects only.

One path for every source: FHIR from a server, a Bulk Data export and the simulator's NDJSON all
become timelines (``fhir_mapping.build``), then states (``fhir_mapping.features.state_matrix``), then
the arrays here. Nothing in this module reads FHIR itself.

Per visit t of a patient:

* state s_t: the visit's feature row (seizure reports, exam, labs, the dose taken on arrival, …);
* action a_t: the dose class decided at the visit, ``dose_class_of(visit.lev_mg_per_day)``;
* reward r_t: read at the NEXT visit, as published (../shared/domain.md §1)
  R = 0.5·R1 + 0.4·R2 + 0.1·R3 with each term +100 (no seizure), −100 (seizure), 0 (not reported);
  R1 = since the last visit, R2 = within the last 3 months, R3 = within the last 6 months;
* the safety mask of s_t: ``fhir_mapping.rails.clinical_rails(...).allowed`` (:func:`timeline_mask`), the
  label bounds AND the clinical rails, the one mask the service uses; the mask of s_{t+1} is the next
  row's mask (``next_index``). The label bounds alone are kept beside it (``label_masks``) so that
  evaluation can count label and clinical-rail violations apart.

The last visit of a patient: its decision is kept for agreement metrics and behaviour cloning, but
it yields no transition, because its outcome is never observed (no next visit, no reward). The
transition INTO the last visit is terminal (``done = 1``): the end of follow-up ends the episode, as
each child's record is one episode in the published method; bootstrapping beyond the record would
invent outcomes nobody saw.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Final

import numpy as np

from fhir_mapping.dosing import N_DOSE_CLASSES, DoseBounds, dose_class_of, label_bounds
from fhir_mapping.rails import RailOutcome, clinical_rails, facts_at
from fhir_mapping.timeline import PatientTimeline
from training.reward import visit_reward

SPLIT_FRACTIONS: Final = (0.7, 0.15, 0.15)  # train / validation / test, by patient


def timeline_bounds(timeline: PatientTimeline, index: int) -> DoseBounds:
    """The label bounds at visit ``index`` with weight and eGFR carried forward from earlier visits when missing.

    On timelines built by ``fhir_mapping.build`` (which carries values forward) these are the bounds of
    the visit's own weight, age and eGFR; on a timeline whose visits hold only same-day values an
    earlier low eGFR stays in force instead of normal renal function being assumed.
    """
    visit = timeline.visits[index]
    weight = next((v.weight_kg for v in reversed(timeline.visits[: index + 1]) if v.weight_kg is not None), None)
    egfr = next((v.egfr for v in reversed(timeline.visits[: index + 1]) if v.egfr is not None), None)
    age = visit.age_years if visit.age_years is not None else timeline.age_years_on(visit.date)
    return label_bounds(weight, age, egfr)


def timeline_rails(timeline: PatientTimeline, index: int, *, skip: frozenset[str] = frozenset()) -> RailOutcome:
    """Label bounds and clinical rails at visit ``index`` (:func:`fhir_mapping.rails.clinical_rails`)."""
    return clinical_rails(facts_at(timeline, index), timeline_bounds(timeline, index), skip=skip)


def timeline_mask(timeline: PatientTimeline, index: int) -> tuple[bool, ...]:
    """THE mask of visit ``index``: label bounds AND clinical rails, as training, prediction and cards use it."""
    return timeline_rails(timeline, index).allowed


def timeline_label_mask(timeline: PatientTimeline, index: int) -> tuple[bool, ...]:
    """The label bounds alone at visit ``index`` (for counting label violations apart from rail violations)."""
    return timeline_bounds(timeline, index).allowed


@dataclass
class VisitTable:
    """Every visit of a set of patients as aligned arrays (raw features, before imputation).

    ``values``/``observed`` come from ``features.state_matrix`` (NaN for missing); ``reward`` is the
    reward of the decision at this visit (read at the next visit; 0 where ``next_index`` is −1);
    ``next_index`` the row of the same patient's next visit or −1; ``behaviour_probs`` the logged
    physician's action probabilities when the data carries them (simulator truth), else None.
    """

    patient_ids: list[str]
    patient: np.ndarray  # int64 [n], index into patient_ids
    step: np.ndarray  # int64 [n], visit position within the patient
    values: np.ndarray  # float64 [n, d]
    observed: np.ndarray  # bool [n, d]
    actions: np.ndarray  # int64 [n]
    masks: np.ndarray  # bool [n, 12]: label bounds AND clinical rails
    rewards: np.ndarray  # float32 [n]
    next_index: np.ndarray  # int64 [n]
    dones: np.ndarray  # float32 [n]
    behaviour_probs: np.ndarray | None = None  # float64 [n, 12]
    dates: list[str] = field(default_factory=list)
    label_masks: np.ndarray | None = None  # bool [n, 12]: the label bounds alone (None: same as masks)
    unreadable_visits: int = 0  # visits left out from a levetiracetam order whose dose could not be read

    def __len__(self) -> int:
        return len(self.actions)

    def subset(self, patient_ids: Sequence[str]) -> VisitTable:
        """The rows of the given patients (their visits in order), with ``next_index`` renumbered."""
        wanted = set(patient_ids)
        keep_patients = [i for i, p in enumerate(self.patient_ids) if p in wanted]
        rows = np.flatnonzero(np.isin(self.patient, keep_patients))
        new_row = np.full(len(self), -1, dtype=np.int64)
        new_row[rows] = np.arange(len(rows))
        next_old = self.next_index[rows]
        next_new = np.where(next_old >= 0, new_row[np.maximum(next_old, 0)], -1)
        patient_map = {old: new for new, old in enumerate(keep_patients)}
        return VisitTable(
            patient_ids=[self.patient_ids[i] for i in keep_patients],
            patient=np.array([patient_map[int(p)] for p in self.patient[rows]], dtype=np.int64),
            step=self.step[rows],
            values=self.values[rows],
            observed=self.observed[rows],
            actions=self.actions[rows],
            masks=self.masks[rows],
            rewards=self.rewards[rows],
            next_index=next_new,
            dones=self.dones[rows],
            behaviour_probs=None if self.behaviour_probs is None else self.behaviour_probs[rows],
            dates=[self.dates[i] for i in rows] if self.dates else [],
            label_masks=None if self.label_masks is None else self.label_masks[rows],
        )


@dataclass
class Transitions:
    """Model-ready arrays: imputed states of every visit plus the transition structure.

    Rows with ``next_index >= 0`` are transitions (s, a, r, s', done); the other rows (last visits)
    carry a decision without an observed outcome and serve only behaviour cloning and agreement.
    """

    states: np.ndarray  # float32 [n, d]
    actions: np.ndarray  # int64 [n]
    masks: np.ndarray  # bool [n, 12]: label bounds AND clinical rails
    rewards: np.ndarray  # float32 [n]
    next_index: np.ndarray  # int64 [n]
    dones: np.ndarray  # float32 [n]
    patient: np.ndarray  # int64 [n]
    step: np.ndarray  # int64 [n]
    behaviour_probs: np.ndarray | None = None
    label_masks: np.ndarray | None = None  # bool [n, 12]: the label bounds alone (None: same as masks)
    intervals_days: np.ndarray | None = None  # float64 [n]: days to the next visit (NaN on last visits; None: unknown)

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def transition_rows(self) -> np.ndarray:
        """Indices of rows that are full transitions (an observed next visit)."""
        return np.flatnonzero(self.next_index >= 0)

    def next_states(self, rows: np.ndarray) -> np.ndarray:
        return self.states[self.next_index[rows]]

    def next_masks(self, rows: np.ndarray) -> np.ndarray:
        return self.masks[self.next_index[rows]]

    def fingerprint(self) -> str:
        """sha256 over the arrays that define the training data (states, actions, rewards, structure)."""
        digest = hashlib.sha256()
        for array in (self.states, self.actions, self.masks, self.rewards, self.next_index, self.dones, self.patient):
            contiguous = np.ascontiguousarray(array)
            digest.update(str(contiguous.dtype).encode() + str(contiguous.shape).encode())
            digest.update(contiguous.tobytes())
        return digest.hexdigest()


def transitions_from_arrays(
    values: np.ndarray,
    actions: np.ndarray,
    masks: np.ndarray,
    rewards: np.ndarray,
    next_index: np.ndarray,
    dones: np.ndarray,
    patient: np.ndarray,
    step: np.ndarray,
    behaviour_probs: np.ndarray | None = None,
) -> Transitions:
    """Transitions from already imputed states (used by tests and benchmarks on synthetic arrays)."""
    return Transitions(
        states=np.asarray(values, dtype=np.float32),
        actions=np.asarray(actions, dtype=np.int64),
        masks=np.asarray(masks, dtype=bool),
        rewards=np.asarray(rewards, dtype=np.float32),
        next_index=np.asarray(next_index, dtype=np.int64),
        dones=np.asarray(dones, dtype=np.float32),
        patient=np.asarray(patient, dtype=np.int64),
        step=np.asarray(step, dtype=np.int64),
        behaviour_probs=behaviour_probs,
    )


def visit_table(
    timelines: Sequence[PatientTimeline],
    behaviour: Mapping[tuple[str, str], Sequence[float]] | None = None,
    adverse_effect_weight: float = 0.0,
) -> VisitTable:
    """Aligned arrays for every visit of every timeline (patients with no visit are skipped).

    ``behaviour`` maps (patient id, visit date ISO) to the physician's action probabilities, when
    the data has them (the simulator's truth files). A patient's visits stop before the first one
    whose levetiracetam dose (on arrival or decided) could not be read: the mapping would show it as
    0 mg, a false state or action; how many were left out is kept in ``unreadable_visits``.
    """
    from fhir_mapping import features

    patient_ids: list[str] = []
    rows: dict[str, list[Any]] = {k: [] for k in ("patient", "step", "actions", "masks", "label_masks", "rewards", "next", "dones",
                                                   "probs", "dates")}
    values_parts: list[np.ndarray] = []
    observed_parts: list[np.ndarray] = []
    offset = 0
    has_behaviour = bool(behaviour)
    unreadable = 0
    for timeline in sorted(timelines, key=lambda t: t.patient_id):
        readable = readable_prefix(timeline)
        unreadable += len(timeline.visits) - readable
        if readable < len(timeline.visits):
            timeline = replace(timeline, visits=timeline.visits[:readable])
        visits = timeline.visits
        if not visits:
            continue
        values, observed = features.state_matrix(timeline)
        values_parts.append(np.asarray(values, dtype=np.float64))
        observed_parts.append(np.asarray(observed, dtype=bool))
        index = len(patient_ids)
        patient_ids.append(timeline.patient_id)
        n = len(visits)
        for t, visit in enumerate(visits):
            last = t == n - 1
            rows["patient"].append(index)
            rows["step"].append(t)
            rows["actions"].append(dose_class_of(visit.lev_mg_per_day))
            bounds = timeline_bounds(timeline, t)
            rows["masks"].append(clinical_rails(facts_at(timeline, t), bounds).allowed)
            rows["label_masks"].append(bounds.allowed)
            rows["rewards"].append(0.0 if last else visit_reward(visits[t + 1], adverse_effect_weight))
            rows["next"].append(-1 if last else offset + t + 1)
            rows["dones"].append(1.0 if t == n - 2 else 0.0)
            rows["dates"].append(visit.date.isoformat())
            if has_behaviour and behaviour is not None:
                probs = behaviour.get((timeline.patient_id, visit.date.isoformat()))
                rows["probs"].append(np.full(N_DOSE_CLASSES, np.nan) if probs is None else np.asarray(probs, dtype=np.float64))
        offset += n
    n_features = len(features.FEATURE_SPEC.names)
    probs_array = np.asarray(rows["probs"], dtype=np.float64).reshape(-1, N_DOSE_CLASSES) if has_behaviour else None
    if probs_array is not None and np.isnan(probs_array).any():
        probs_array = None  # incomplete truth: fall back to the estimated physician policy
    return VisitTable(
        patient_ids=patient_ids,
        patient=np.asarray(rows["patient"], dtype=np.int64),
        step=np.asarray(rows["step"], dtype=np.int64),
        values=np.concatenate(values_parts) if values_parts else np.zeros((0, n_features)),
        observed=np.concatenate(observed_parts) if observed_parts else np.zeros((0, n_features), dtype=bool),
        actions=np.asarray(rows["actions"], dtype=np.int64),
        masks=np.asarray(rows["masks"], dtype=bool).reshape(-1, N_DOSE_CLASSES),
        rewards=np.asarray(rows["rewards"], dtype=np.float32),
        next_index=np.asarray(rows["next"], dtype=np.int64),
        dones=np.asarray(rows["dones"], dtype=np.float32),
        behaviour_probs=probs_array,
        dates=rows["dates"],
        unreadable_visits=unreadable,
        label_masks=np.asarray(rows["label_masks"], dtype=bool).reshape(-1, N_DOSE_CLASSES),
    )


def readable_prefix(timeline: PatientTimeline) -> int:
    """How many leading visits have a readable levetiracetam dose, both on arrival and decided."""
    for index, visit in enumerate(timeline.visits):
        if visit.lev_before_unreadable is not None or visit.lev_unreadable is not None:
            return index
    return len(timeline.visits)


def split_patients(patient_ids: Sequence[str], seed: int, fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> dict[str, list[str]]:
    """Patient-level train/validation/test split, fixed by ``seed`` and independent of input order."""
    ordered = sorted(patient_ids)
    order = np.random.default_rng(seed).permutation(len(ordered))
    n = len(ordered)
    n_train = round(fractions[0] * n)
    n_valid = round(fractions[1] * n)
    if n >= 3:
        n_train = max(1, min(n_train, n - 2))
        n_valid = max(1, min(n_valid, n - n_train - 1))
    shuffled = [ordered[i] for i in order]
    return {
        "train": shuffled[:n_train],
        "validation": shuffled[n_train : n_train + n_valid],
        "test": shuffled[n_train + n_valid :],
    }


def to_transitions(table: VisitTable, imputation: Any) -> Transitions:
    """Impute a visit table with statistics fitted elsewhere (on the training split only)."""
    states = imputation.transform(table.values, table.observed)
    transitions = transitions_from_arrays(
        states, table.actions, table.masks, table.rewards, table.next_index, table.dones, table.patient, table.step,
        table.behaviour_probs,
    )
    transitions.label_masks = table.label_masks
    transitions.intervals_days = visit_intervals_days(table)
    return transitions


def visit_intervals_days(table: VisitTable) -> np.ndarray | None:
    """Days from each visit to the patient's next visit (NaN on last visits), or None when the table has no dates."""
    if len(table.dates) != len(table):
        return None
    ordinals = np.array([date.fromisoformat(d).toordinal() for d in table.dates], dtype=np.float64)
    following = table.next_index >= 0
    intervals = np.full(len(table), np.nan)
    intervals[following] = ordinals[table.next_index[following]] - ordinals[following]
    return intervals


@dataclass
class Dataset:
    """Train/validation/test transitions and the imputation fitted on the training split only."""

    train: Transitions
    validation: Transitions
    test: Transitions
    tables: dict[str, VisitTable]
    imputation: Any
    splits: dict[str, list[str]]
    seed: int


def build_dataset(table: VisitTable, seed: int) -> Dataset:
    """Split by patient, fit the imputation on the training visits, impute every split with it."""
    from fhir_mapping import features

    splits = split_patients(table.patient_ids, seed)
    tables = {name: table.subset(ids) for name, ids in splits.items()}
    train_table = tables["train"]
    imputation = features.Imputation.fit(train_table.values, train_table.observed)
    parts = {name: to_transitions(t, imputation) for name, t in tables.items()}
    return Dataset(parts["train"], parts["validation"], parts["test"], tables, imputation, splits, seed)


TRUTH_VISITS_FILE: Final = "truth/visits.jsonl"


@dataclass
class LoadedData:
    """Timelines read from a data folder, the physician's probabilities when the folder has truth files."""

    timelines: list[PatientTimeline]
    behaviour: dict[tuple[str, str], list[float]] | None
    problems: list[Any]
    source: str
    is_cohort: bool


def load_data(path: str | Any) -> LoadedData:
    """Read a cohort folder (``DIR/ndjson`` + ``DIR/truth``) or any FHIR NDJSON/JSON export into timelines."""
    import json
    from pathlib import Path

    from fhir_mapping.bulk import index_patients

    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"no data at {folder}")
    source = folder / "ndjson" if (folder / "ndjson").is_dir() else folder
    # Many small dicts and no reference cycles: the cyclic collector would rescan them again and again
    # while they are made (most of the load's time on a 10,000-child cohort).
    collecting = gc.isenabled()
    gc.disable()
    try:
        # One patient's resources in memory at a time: a 10,000-child cohort held whole is several GB.
        index = index_patients(source)
        problems = index.problems
        timelines = list(index.timelines())
        del index
    finally:
        if collecting:
            gc.enable()
    behaviour: dict[tuple[str, str], list[float]] | None = None
    truth_file = folder / TRUTH_VISITS_FILE if folder.is_dir() else None
    if truth_file is not None and truth_file.exists():
        behaviour = {}
        with truth_file.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    row = json.loads(line)
                    probs = row.get("action_probabilities")
                    if probs is not None:
                        behaviour[(str(row["patient_id"]), str(row["date"]))] = [float(p) for p in probs]
    return LoadedData(timelines, behaviour, problems, str(folder), truth_file is not None and truth_file.exists())
