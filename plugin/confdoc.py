"""The configuration reference, generated from the settings models (names, types, defaults, docstrings).

``python -m plugin.confdoc > docs/configuration.md`` rewrites the reference; a test fails when the
file and the settings disagree, so the documentation cannot drift from the code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined

from plugin.settings import TOOLING_VARIABLES, Settings
from training.retrain.settings import RetrainSettings
from training.settings_base import EnvSettings, choices_of, variable_of

HEADER = """# Configuration reference

epidose is configured only by environment variables (`EPIDOSE_*`), read once at start-up into typed,
frozen settings (pydantic-settings). A value that cannot be used, a choice that is none of the valid
ones, or an `EPIDOSE_*` name that is none of the variables below (a typo) stops the start with one
line naming the variable (and, for a typo, the closest valid name). This page is generated from the
settings models by `python -m plugin.confdoc > docs/configuration.md`.
"""

# The data folder's default depends on the machine, so it is described rather than shown.
DESCRIBED_DEFAULTS = {"EPIDOSE_DATA_DIR": "$XDG_DATA_HOME/epidose or ~/.local/share/epidose"}


def rows(cls: type[EnvSettings]) -> list[tuple[str, str, str]]:
    """(variable, default, description) for every field of a settings model, in declaration order."""
    found = []
    for name, info in cls.model_fields.items():
        variable = variable_of(cls, name)
        description = " ".join((info.description or "").split())
        choices = choices_of(info.annotation)
        if choices:
            description += f" One of: {', '.join(choices)}."
        if info.default is not PydanticUndefined:
            default = _shown(info.default)
        elif info.default_factory is not None:
            default = _shown(info.default_factory())  # type: ignore[call-arg]
        else:
            default = ""
        found.append((variable, DESCRIBED_DEFAULTS.get(variable, default), description))
    return found


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, Path):
        return "(see description)" if not value.is_absolute() else str(value)
    return "" if value is None else str(value)


def _table(found: list[tuple[str, str, str]]) -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for variable, default, description in found:
        shown = f"`{default}`" if default else ""
        escaped = description.replace("|", "\\|")
        lines.append(f"| `{variable}` | {shown} | {escaped} |")
    return "\n".join(lines)


def service_rows() -> list[tuple[str, str, str]]:
    """The service's settings."""
    return rows(Settings)


def reference_markdown() -> str:
    """The whole configuration reference page."""
    service = service_rows()
    seen = {row[0] for row in service}
    retrain = [row for row in rows(RetrainSettings) if row[0] not in seen]
    tools = ", ".join(f"`{name}`" for name in TOOLING_VARIABLES)
    return "\n".join([
        HEADER,
        f"## {Settings.section}\n",
        _table(service),
        f"\n## {RetrainSettings.section}\n",
        "Variables the service also reads (`EPIDOSE_MODEL_DIR`, `EPIDOSE_DATABASE_URL`) are shared with it "
        "and listed above.\n",
        _table(retrain),
        f"\n## Read by the tests and benchmarks only\n\n{tools} are allowed beside the settings; the service "
        "ignores them.",
        "",
    ])


if __name__ == "__main__":
    print(reference_markdown(), end="")
