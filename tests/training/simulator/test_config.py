"""The one sourced configuration: every field documented with a source, and it drives the cohort."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
from dataclasses import replace

import numpy as np

from training.simulator import config as config_module
from training.simulator.calibration import six_month_recurrence
from training.simulator.cohort import simulate_cohort
from training.simulator.config import DEFAULT_CONFIG, PD_PROFILES, SimulatorConfig, sources, with_pd_profile
from training.simulator.patients import draw_cohort


def test_every_field_has_a_source_and_a_docstring() -> None:
    """Each configuration field names its source in metadata and has a docstring line below it."""
    for entry in sources():
        assert entry["source"].strip(), entry["name"]
    tree = ast.parse(inspect.getsource(config_module))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SimulatorConfig")
    documented = set()
    for first, second in zip(cls.body, cls.body[1:], strict=False):
        if isinstance(first, ast.AnnAssign) and isinstance(second, ast.Expr) and isinstance(second.value, ast.Constant):
            documented.add(first.target.id)  # type: ignore[union-attr]
    assert documented == {f.name for f in dataclasses.fields(SimulatorConfig)}


def test_unverified_values_are_flagged_as_assumptions() -> None:
    """Values domain.md marks [unverified] (residual error, the fitted EC50) and the PD values adapted to
    BECT (responder share, log Emax) are flagged as assumptions."""
    flagged = {s["name"] for s in sources() if s["assumption"]}
    assert {"residual_cv", "ec50_median_mg_l", "ec50_log_sd", "responder_share", "log_emax"} <= flagged
    assert "single_seizure_share" not in flagged  # sourced: domain.md §4


def test_json_round_trip() -> None:
    """The configuration survives to_json/from_json unchanged."""
    assert SimulatorConfig.from_json(DEFAULT_CONFIG.to_json()) == DEFAULT_CONFIG


def test_changing_a_source_value_changes_the_cohort() -> None:
    """Raising the single-seizure share (domain.md §4) yields more single-seizure children and fewer treated visits."""
    base = draw_cohort(400, 2, DEFAULT_CONFIG)
    more = draw_cohort(400, 2, replace(DEFAULT_CONFIG, single_seizure_share=0.5))
    assert sum(c.single_seizure for c in more) > sum(c.single_seizure for c in base) + 100
    treated = lambda runs: np.mean([v.dose_class > 0 for r in runs for v in r.visits])  # noqa: E731
    assert treated(simulate_cohort(150, 2, replace(DEFAULT_CONFIG, start_mg_per_kg_day=40.0))) != treated(simulate_cohort(150, 2))


def test_sourced_pd_is_calibrated_to_the_trial_recurrence_figures() -> None:
    """Sourced profile: untreated 6-month recurrence near 71% (Rating 2000), 19% at 30 mg/kg/day
    (Borggraefe 2013), and, with EC50 31.5 mg/L above the label's exposures, falling across the label range."""
    children = draw_cohort(1500, 4, DEFAULT_CONFIG)
    assert abs(six_month_recurrence(children, DEFAULT_CONFIG, 0.0) - 0.71) < 0.06
    assert abs(six_month_recurrence(children, DEFAULT_CONFIG, 30.0) - 0.19) < 0.04
    by_dose = [six_month_recurrence(children, DEFAULT_CONFIG, dose) for dose in (20.0, 30.0, 40.0, 60.0)]
    assert all(a > b for a, b in itertools.pairwise(by_dose)), by_dose
    for dose_recurrence in by_dose[:3]:
        assert abs(dose_recurrence - 0.19) < 0.08


def test_fitted_pd_is_calibrated_to_the_trial_recurrence_figures() -> None:
    """Fitted profile: untreated near 71% and near 19% on each of 20–40 mg/kg/day."""
    fitted = with_pd_profile(DEFAULT_CONFIG, "fitted")
    children = draw_cohort(1500, 4, fitted)
    assert abs(six_month_recurrence(children, fitted, 0.0) - 0.71) < 0.06
    for dose in (20.0, 30.0, 40.0):
        assert abs(six_month_recurrence(children, fitted, dose) - 0.19) < 0.08


def test_the_default_is_the_sourced_profile_and_profiles_share_the_children() -> None:
    """DEFAULT_CONFIG is the sourced profile; both profiles draw the same children (ids, seizure
    processes, physicians) and differ in the drug's effect only."""
    assert with_pd_profile(DEFAULT_CONFIG, "sourced") == DEFAULT_CONFIG
    sourced = draw_cohort(200, 5, DEFAULT_CONFIG)
    fitted_config = with_pd_profile(DEFAULT_CONFIG, "fitted")
    fitted = draw_cohort(200, 5, fitted_config)
    assert [c.patient_id for c in sourced] == [c.patient_id for c in fitted]
    assert all(np.array_equal(a.seizure_days, b.seizure_days) and a.seed == b.seed for a, b in zip(sourced, fitted, strict=True))
    responders = np.mean([c.responder for c in sourced])
    assert abs(responders - DEFAULT_CONFIG.responder_share) < 0.05
    assert all(c.responder for c in fitted)
    # Non-responders gain nothing from any dose in the sourced world; every child gains in the fitted one.
    non_responder = next(c for c in sourced if not c.responder)
    assert non_responder.drug_effect(30.0, DEFAULT_CONFIG) == 0.0
    twin = next(c for c in fitted if c.patient_id == non_responder.patient_id)
    assert twin.drug_effect(30.0, fitted_config) > 0.5


def test_sourced_ec50_is_schoemaker_and_unknown_profiles_are_refused() -> None:
    """EC50 = exp(3.45) mg/L (Schoemaker 2018): a responder with the typical log Emax gets half its
    maximal log-rate effect at 31.5 mg/L; an unknown profile name is an error."""
    child = draw_cohort(1, 0, DEFAULT_CONFIG)[0]
    child.responder, child.log_emax = True, DEFAULT_CONFIG.log_emax
    half = child.drug_effect(float(np.exp(3.45)), DEFAULT_CONFIG)
    assert abs(np.log(1.0 - half) - DEFAULT_CONFIG.log_emax / 2) < 0.01
    assert set(PD_PROFILES) == {"sourced", "fitted"}
    try:
        with_pd_profile(DEFAULT_CONFIG, "guessed")
    except ValueError as error:
        assert "sourced" in str(error)
    else:
        raise AssertionError("an unknown profile was accepted")
