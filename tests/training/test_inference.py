"""The numpy model loader: no torch, schema refusal, forests in numpy, recommendations and coverage."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from training.artifact.save import save_model
from training.inference import ArtifactError, Coverage, load_inference_model
from training.policies import ForestConfig, make_policy, named_config

from .synthetic import synthetic_raw, synthetic_transitions


@pytest.fixture(scope="module")
def saved_bc(tmp_path_factory):
    data, imputation = synthetic_transitions(n_patients=20, visits=4)
    policy = make_policy(named_config("bc", steps=100), data.states.shape[1])
    policy.fit(data)
    folder = tmp_path_factory.mktemp("bc") / "model"
    save_model(folder, policy, imputation=imputation, train=data)
    return folder, data


def test_inference_module_loads_and_scores_without_torch_or_sklearn(saved_bc):
    """Loading and scoring a model imports neither torch nor scikit-learn (the service has neither)."""
    folder, _ = saved_bc
    code = (
        "import sys, numpy as np\n"
        "from training.inference import load_inference_model\n"
        f"m = load_inference_model({str(folder)!r})\n"
        "m.scores(np.zeros((1, m.layers[0][0].shape[1]), np.float32))\n"
        "print('torch' in sys.modules, 'sklearn' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_artifact_with_another_schema_hash_is_refused(saved_bc, tmp_path):
    """A model folder whose feature-schema hash differs from FEATURE_SPEC's raises ArtifactError."""
    import shutil

    folder, _ = saved_bc
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    metadata = json.loads((copy / "metadata.json").read_text())
    metadata["schema_hash"] = "0" * 16
    (copy / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ArtifactError, match="schema"):
        load_inference_model(copy)


def test_missing_folder_and_files_raise_artifact_error(tmp_path):
    """An absent folder or a folder without metadata is an ArtifactError, not a crash."""
    with pytest.raises(ArtifactError):
        load_inference_model(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError):
        load_inference_model(tmp_path / "empty")


def test_recommend_returns_allowed_class_scores_and_raw_argmax(saved_bc):
    """recommend() imputes a raw row, returns the best allowed class, the 12 scores and the unmasked argmax."""
    folder, _ = saved_bc
    model = load_inference_model(folder)
    values, observed, _ = synthetic_raw(n_patients=1, visits=1, seed=3)
    mask = np.zeros(12, bool)
    mask[:3] = True
    choice, scores, raw = model.recommend(values[0], observed[0], mask)
    assert scores.shape == (12,)
    assert choice == int(np.argmax(np.where(mask, scores, -np.inf)))
    assert raw == int(np.argmax(scores))
    assert model.score_kind == "log_prob"


def test_numpy_forest_matches_scikit_learn_probabilities():
    """The exported tree arrays give exactly scikit-learn's predict_proba, mapped onto the 12 classes."""
    from sklearn.ensemble import RandomForestClassifier

    from training.policies.forest import forest_arrays

    data, _ = synthetic_transitions(n_patients=20, visits=4)
    model = RandomForestClassifier(n_estimators=7, max_depth=5, random_state=0).fit(data.states, data.actions)
    ours = forest_arrays(model).probabilities(data.states)
    expected = np.zeros_like(ours)
    expected[:, model.classes_] = model.predict_proba(data.states)
    assert np.allclose(ours, expected)


def test_forest_policy_scores_are_log_probabilities():
    """The forest policy's scores exponentiate to distributions over the 12 classes."""
    data, _ = synthetic_transitions(n_patients=10, visits=4)
    policy = make_policy(ForestConfig(n_estimators=5, max_depth=3), data.states.shape[1])
    policy.fit(data)
    assert np.allclose(np.exp(policy.scores(data.states)).sum(axis=1), 1.0, atol=1e-3)


def test_coverage_is_high_for_typical_states_and_low_for_outliers():
    """Training-like states get a high coverage percentile, far-away states one near 0."""
    rng = np.random.default_rng(0)
    states = rng.normal(size=(500, 4))
    coverage = Coverage.fit(states)
    assert coverage.percentile(np.zeros((1, 4)))[0] > 90
    assert coverage.percentile(np.full((1, 4), 10.0))[0] < 1
