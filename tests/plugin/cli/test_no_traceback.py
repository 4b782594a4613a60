"""Every command family answers a bad setting or a bad input with a clear message and a non-zero status, never a traceback.

The real ``epidose`` command runs in a subprocess for each family, with one thing wrong.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there

# family: (arguments, extra environment, exit status, words the message must hold)
CASES: dict[str, tuple[list[str], dict[str, str], int, str]] = {
    "serve": (["serve"], {"EPIDOSE_PORT": "eighty"}, 1, "EPIDOSE_PORT"),
    "sandbox": (["sandbox", "--fhir-server", f"{UNREACHABLE}/fhir", "--patient", "p1", "--service", UNREACHABLE], {}, 1,
                "could not be reached"),
    "load": (["load", "--fhir-server", f"{UNREACHABLE}/fhir", "{tmp}/Patient.ndjson"], {}, 1, "could not be reached"),
    "map": (["map", "{tmp}/not-json.json"], {}, 2, "not-json.json"),
    "cohort": (["cohort", "--patients", "2", "--out", "{tmp}/not-json.json"], {}, 2, "is a file"),
    "train": (["train", "--data", "{tmp}/empty", "--out", "{tmp}/model", "--no-progress"], {}, 1, "empty"),
    "evaluate": (["evaluate", "--model", "{tmp}/empty", "--data", "{tmp}/empty", "--out", "{tmp}/report"], {}, 1,
                 "model folder"),
    "retrain": (["retrain", "--once"], {"EPIDOSE_RETRAIN_HOLDOUT": "2"}, 1, "EPIDOSE_RETRAIN_HOLDOUT"),
    "scheduler": (["scheduler"], {"EPIDOSE_RETRAIN_SCHEDULE": "whenever"}, 1, "EPIDOSE_RETRAIN_SCHEDULE"),
    "models": (["models", "promote", "v9999"], {}, 1, "v9999"),
    "feedback": (["feedback", "export"], {"EPIDOSE_RESPONSE_CACHE_SIZE": "-1"}, 1, "EPIDOSE_RESPONSE_CACHE_SIZE"),
    "settings": (["settings", "--markdown"], {}, 2, "--markdown"),
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad-inputs")
    (folder / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "p1"}\n', encoding="utf-8")
    (folder / "not-json.json").write_text("this is not FHIR\n", encoding="utf-8")
    (folder / "empty").mkdir()
    return folder


@pytest.mark.parametrize("family", sorted(CASES))
def test_a_bad_input_is_one_line_without_a_traceback(family: str, workspace: Path) -> None:
    """A bad setting, path or argument ends the command with a message naming it and a non-zero status."""
    arguments, extra, status, words = CASES[family]
    env = {key: value for key, value in os.environ.items() if not key.startswith("EPIDOSE_")}
    env.update({"PYTHONPATH": str(ROOT), "EPIDOSE_DATA_DIR": str(workspace / "data"), "EPIDOSE_AUTH": "off",
                "EPIDOSE_BUILD_DEFAULT_MODEL": "off", **extra})
    command = [argument.replace("{tmp}", str(workspace)) for argument in arguments]
    result = subprocess.run([sys.executable, "-m", "plugin.cli", *command], env=env, cwd=workspace,
                            capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == status, result.stderr
    assert words in result.stderr, result.stderr
