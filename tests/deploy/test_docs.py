"""The documentation stays true to the code: the configuration reference and the quick-start request."""

from __future__ import annotations

import json
import re
from pathlib import Path

from plugin.confdoc import reference_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_is_generated_from_settings() -> None:
    """docs/configuration.md equals what the settings' docstrings generate (regenerate with python -m plugin.confdoc)."""
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == reference_markdown()


def test_every_documented_variable_is_read_by_a_settings_object() -> None:
    """Each EPIDOSE_* name the README and guides mention is a real setting."""
    known = set(re.findall(r"`(EPIDOSE_[A-Z_]+)`", reference_markdown()))
    for doc in ("README.md", "docs/ehr-integration.md", "docs/operations.md"):
        mentioned = set(re.findall(r"\b(EPIDOSE_[A-Z_]+)\b", (ROOT / doc).read_text(encoding="utf-8")))
        assert mentioned <= known, f"{doc} names unknown settings: {sorted(mentioned - known)}"


def test_readme_has_exactly_the_two_setup_commands() -> None:
    """The README's set-up block holds one command that runs the service and one that runs the tests."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Set up", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert commands == ['python3 -m venv .venv && . .venv/bin/activate && pip install "torch==2.13.0" -e ".[train]" && epidose serve',
                        "bash scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/test.sh" in ci


def test_quick_start_request_is_a_patient_view_call() -> None:
    """The quick-start example is a complete patient-view request with a prefetch for every template key."""
    request = json.loads((ROOT / "docs" / "examples" / "patient-view.json").read_text(encoding="utf-8"))
    service = json.loads((ROOT / "hooks" / "patient-view.json").read_text(encoding="utf-8"))
    assert request["hook"] == "patient-view"
    assert set(request["prefetch"]) == set(service["prefetch"])


def test_readme_commands_are_real_commands_and_options() -> None:
    """Every `epidose ...` line in the README's code blocks names a command of the CLI and only its options."""
    import shlex

    from plugin.cli import main

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    calls = [line.split("epidose ", 1)[1] for block in blocks for line in block.replace("\\\n", " ").splitlines()
             if re.search(r"(^|&& |\s)epidose ", line) and not line.lstrip().startswith("#")]
    assert any(call.startswith("load ") for call in calls), "the README loads data with epidose load"
    for call in calls:
        words = shlex.split(call.split("&", 1)[0].split("|", 1)[0])
        command = main.commands.get(words[0])
        assert command is not None, f"README: no command epidose {words[0]}"
        known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        given = {word.split("=", 1)[0] for word in words[1:] if word.startswith("--")}
        assert given <= known, f"README: epidose {words[0]} has no option {sorted(given - known)}"
    assert not re.search(r"for f in .*bundles.*curl", readme, flags=re.S), "bundles are loaded with epidose load"
