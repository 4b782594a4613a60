"""The CLI: ``epidose retrain --once/--history`` on a local folder and ``epidose models``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from plugin.cli import main as cli
from training.artifact.registry import ModelRegistry
from training.simulator.cohort import write_cohort

pytestmark = pytest.mark.slow


def test_retrain_once_from_folder_then_models(tmp_path: Path) -> None:
    """With no server, a cohort folder feeds a run; models list/promote/rollback act on the registry."""
    write_cohort(tmp_path / "cohort", 20, seed=2)
    env = {
        "EPIDOSE_DATA_DIR": str(tmp_path / "data"),
        "EPIDOSE_RETRAIN_INITIAL_STEPS": "100",
        "EPIDOSE_RETRAIN_BEHAVIOUR_STEPS": "50",
        "EPIDOSE_RETRAIN_BOOTSTRAP": "50",
        "EPIDOSE_RETRAIN_HOLDOUT": "0.3",
    }
    runner = CliRunner()
    first = runner.invoke(cli, ["retrain", "--once", "--source", str(tmp_path / "cohort")], env=env)
    assert first.exit_code == 0, first.output
    record = json.loads(first.output)
    assert record["decision"] == "promoted" and record["pulled_resources"] > 0
    assert record["data"]["simulated"] is True and record["metrics"]["candidate"]["true_value"] is not None

    again = runner.invoke(cli, ["retrain", "--once", "--source", str(tmp_path / "cohort")], env=env)
    assert json.loads(again.output)["decision"] == "refused"
    assert json.loads(again.output)["reason"] == "no new resources since the last run"

    history = runner.invoke(cli, ["retrain", "--history"], env=env)
    assert [json.loads(line)["decision"] for line in history.output.splitlines()] == ["promoted", "refused"]

    models = tmp_path / "data" / "models"
    listed = runner.invoke(cli, ["models", "list", "--json"], env=env)
    versions = [json.loads(line) for line in listed.output.splitlines()]
    assert [(v["version"], v["current"]) for v in versions] == [("v0001", True)]
    assert Path(versions[0]["path"]).parent == models / "versions"

    assert runner.invoke(cli, ["models", "rollback"], env=env).exit_code != 0  # nothing to go back to
    assert runner.invoke(cli, ["models", "promote", "v0042"], env=env).exit_code != 0
    second = ModelRegistry(models).add(models / "versions" / "v0001", {"note": "a copy"})
    assert runner.invoke(cli, ["models", "promote", second], env=env).output.strip() == f"promoted {second}"
    assert f"* {second}" in runner.invoke(cli, ["models", "list"], env=env).output
    assert runner.invoke(cli, ["models", "rollback"], env=env).output.strip() == "rolled back to v0001"
    assert "* v0001" in runner.invoke(cli, ["models", "list"], env=env).output


def test_retrain_needs_exactly_one_mode(tmp_path: Path) -> None:
    """``retrain`` without --once or --history, or with both sources, is a usage error."""
    env = {"EPIDOSE_DATA_DIR": str(tmp_path)}
    assert CliRunner().invoke(cli, ["retrain"], env=env).exit_code == 2
    both = CliRunner().invoke(cli, ["retrain", "--once", "--fhir-server", "http://127.0.0.1:1/fhir", "--source", str(tmp_path)], env=env)
    assert both.exit_code == 2


def test_failed_run_exits_nonzero(tmp_path: Path) -> None:
    """A run that cannot reach its server is recorded as failed and the command exits 1."""
    env = {"EPIDOSE_DATA_DIR": str(tmp_path), "EPIDOSE_FHIR_RETRIES": "0", "EPIDOSE_RETRAIN_FHIR_TIMEOUT": "1"}
    result = CliRunner().invoke(cli, ["retrain", "--once", "--fhir-server", "http://127.0.0.1:9/fhir"], env=env)
    assert result.exit_code == 1
    assert json.loads(result.output.splitlines()[0])["decision"] == "failed"
