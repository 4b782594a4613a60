"""The configuration reference, generated from the settings objects' field docstrings.

``python -m plugin.confdoc > docs/configuration.md`` rewrites the reference; a test fails when the
file and the settings disagree, so the documentation cannot drift from the code.
"""

from __future__ import annotations

import ast
import inspect
import itertools
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

HEADER = """# Configuration reference

epidose is configured only by environment variables (`EPIDOSE_*`), read once at start-up into one
typed, frozen object; invalid values stop the start with a message naming the variable. This page is
generated from the settings' docstrings by `python -m plugin.confdoc > docs/configuration.md`.
"""


def field_docs(cls: type) -> list[tuple[str, str, str]]:
    """(variable, default, description) for each documented field of a settings dataclass."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    documented: dict[str, str] = {}
    for node, following in itertools.pairwise(body):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)):
            documented[node.target.id] = " ".join(str(following.value.value).split())
    rows = []
    for f in fields(cls):
        text = documented.get(f.name, "")
        variable, _, description = text.partition(": ")
        if not variable.startswith("EPIDOSE_"):
            continue
        rows.append((variable, _default(f.default, f.default_factory), description))
    return rows


def _default(value: Any, factory: Any) -> str:
    if value is MISSING:
        value = factory() if factory is not MISSING else ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, Path):
        return "(see description)" if not value.is_absolute() else str(value)
    return "" if value is None else str(value)


def _table(rows: list[tuple[str, str, str]]) -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for variable, default, description in rows:
        shown = f"`{default}`" if default else ""
        escaped = description.replace("|", "\\|")
        lines.append(f"| `{variable}` | {shown} | {escaped} |")
    return "\n".join(lines)


def service_rows() -> list[tuple[str, str, str]]:
    """The service's settings (the data folder's default depends on the machine, so it is described)."""
    from plugin.settings import Settings

    rows = [row for row in field_docs(Settings) if row[0] != "EPIDOSE_DATA_DIR"]
    rows.insert(0, ("EPIDOSE_DATA_DIR", "$XDG_DATA_HOME/epidose or ~/.local/share/epidose",
                    "folder for models, the SQLite store and the hashing key."))
    return rows


def reference_markdown() -> str:
    """The whole configuration reference page."""
    from training.retrain.settings import RetrainSettings

    service = service_rows()
    seen = {row[0] for row in service}
    retrain = [row for row in field_docs(RetrainSettings) if row[0] not in seen]
    return "\n".join([
        HEADER,
        "## Service (`epidose serve`)\n",
        _table(service),
        "\n## Retraining (`epidose retrain`, `epidose scheduler`)\n",
        _table(retrain),
        "",
    ])


if __name__ == "__main__":
    print(reference_markdown(), end="")
