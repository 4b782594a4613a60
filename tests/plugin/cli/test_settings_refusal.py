"""A misspelt ``EPIDOSE_*`` name or an invalid choice stops ``epidose serve`` and ``epidose retrain`` at start.

Each runs the real command in a subprocess (as an operator would), and checks it exits non-zero with
one clear line on standard error, naming the variable and what would be valid, and no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugin.settings import TOOLING_VARIABLES, Settings, SettingsError, known_variables
from training.retrain.settings import ConfigName, RetrainSettings
from training.settings_base import choices_of

ROOT = Path(__file__).resolve().parents[3]
COMMANDS = {"serve": ["serve", "--port", "1"], "retrain": ["retrain", "--once"]}


def _run(command: list[str], tmp_path: Path, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("EPIDOSE_")}
    env.update({"PYTHONPATH": str(ROOT), "EPIDOSE_DATA_DIR": str(tmp_path), "EPIDOSE_AUTH": "off",
                "EPIDOSE_BUILD_DEFAULT_MODEL": "off", **extra})
    return subprocess.run([sys.executable, "-m", "plugin.cli", *command], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_misspelt_variable_stops_the_start_naming_the_closest(command: str, tmp_path: Path) -> None:
    """EPIDOSE_RETRAIN_OPE_ESTIMATR=wis is refused with 'did you mean EPIDOSE_RETRAIN_OPE_ESTIMATOR?'."""
    result = _run(COMMANDS[command], tmp_path, {"EPIDOSE_RETRAIN_OPE_ESTIMATR": "wis"})
    assert result.returncode != 0
    line = _one_line(result)
    assert "EPIDOSE_RETRAIN_OPE_ESTIMATR is not an epidose setting" in line
    assert "did you mean EPIDOSE_RETRAIN_OPE_ESTIMATOR?" in line


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_estimator_the_gate_cannot_compute_stops_the_start(command: str, tmp_path: Path) -> None:
    """EPIDOSE_RETRAIN_OPE_ESTIMATOR=fqe (never computed on the held-out split) names the valid choices."""
    result = _run(COMMANDS[command], tmp_path, {"EPIDOSE_RETRAIN_OPE_ESTIMATOR": "fqe"})
    assert result.returncode != 0
    line = _one_line(result)
    assert "EPIDOSE_RETRAIN_OPE_ESTIMATOR='fqe' is not a valid choice; choose one of wis, wdr" in line
    assert not (tmp_path / "retrain" / "runs.jsonl").exists()  # refused before any run, not recorded as failed


def test_a_misspelt_choice_names_the_closest_choice() -> None:
    """A near miss of a choice (wsi) is answered with the choice it resembles (wis)."""
    with pytest.raises(SettingsError, match=r"choose one of wis, wdr \(did you mean wis\?\)"):
        RetrainSettings.from_env({"EPIDOSE_RETRAIN_OPE_ESTIMATOR": "wsi"})
    with pytest.raises(SettingsError, match=r"EPIDOSE_WORKER_CLASS='gevnt'.*did you mean gevent\?"):
        Settings.from_env({"EPIDOSE_WORKER_CLASS": "gevnt"})


def test_a_value_out_of_range_names_its_own_variable() -> None:
    """A negative cache size is reported under EPIDOSE_RESPONSE_CACHE_SIZE alone, not under other names."""
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"EPIDOSE_RESPONSE_CACHE_SIZE": "-1"})
    assert str(refused.value).startswith("EPIDOSE_RESPONSE_CACHE_SIZE:")
    assert "EPIDOSE_PORT" not in str(refused.value)


def test_the_known_names_are_the_settings_and_the_test_tools() -> None:
    """Every service and retraining variable is known, and the test suite's own variables start nothing failing."""
    assert known_variables() == set(Settings.variables()) | set(RetrainSettings.variables()) | set(TOOLING_VARIABLES)
    assert {"EPIDOSE_AUTH", "EPIDOSE_RETRAIN_OPE_ESTIMATOR", "EPIDOSE_RETRAIN_DIR"} <= known_variables()
    assert Settings.from_env(dict.fromkeys(TOOLING_VARIABLES, "1")).auth is True


def test_the_first_model_choices_are_the_trainable_configurations() -> None:
    """EPIDOSE_RETRAIN_INITIAL_CONFIG and `epidose train --config` accept exactly the configurations training knows."""
    from plugin.cli.train import train
    from training.policies.config import CONFIGS

    assert choices_of(ConfigName) == tuple(CONFIGS)
    option = next(p for p in train.params if p.name == "config_name")
    assert tuple(option.type.choices) == tuple(CONFIGS)  # type: ignore[attr-defined]
