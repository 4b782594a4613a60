"""The packages import one way only: plugin/cli → plugin → training → fhir_mapping (hooks beside it).

Read from the source with ``ast`` (every import, also those inside functions and under
``TYPE_CHECKING``), so a lazy import cannot hide an arrow running back up or a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The floor of each package: a module may import its own floor and the floors below.
FLOORS = {"fhir_mapping": 0, "hooks": 0, "training": 1, "plugin": 2, "plugin.cli": 3}


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the shipped packages, by dotted name (a package by its __init__)."""
    found = {}
    for package in ("fhir_mapping", "hooks", "training", "plugin"):
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported project module, line) for every import statement in ``path``."""

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            target = resolve(name)
            if target is not None:
                yield target, node.lineno


def floor(module: str) -> int:
    return FLOORS["plugin.cli"] if module == "plugin.cli" or module.startswith("plugin.cli.") else FLOORS[module.split(".")[0]]


def graph(root: Path = ROOT) -> dict[str, set[tuple[str, int]]]:
    known = modules(root)
    return {module: {(t, line) for t, line in imports(path, known) if t != module} for module, path in known.items()}


def upward(edges: dict[str, set[tuple[str, int]]]) -> list[str]:
    return sorted(f"{m}:{line} imports {t}" for m, out in edges.items() for t, line in out if floor(t) > floor(m))


def cycles(edges: dict[str, set[tuple[str, int]]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target, _ in edges[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def test_no_package_imports_one_above_it() -> None:
    """fhir_mapping imports neither training nor plugin; training never imports plugin; only plugin.cli sits on top."""
    assert upward(graph()) == []


def test_no_module_imports_itself_through_others() -> None:
    """No circle of imports, lazy ones included."""
    assert cycles(graph()) == []


def test_click_is_imported_by_the_command_line_only() -> None:
    """The command line is the one home of click: the libraries below it raise errors, the commands print them."""
    users = sorted(m for m, path in modules().items()
                   if floor(m) < FLOORS["plugin.cli"] and "click" in {n.split(".")[0] for n in _external(path)})
    assert users == []


def test_the_checks_find_an_upward_import_and_a_circle(tmp_path: Path) -> None:
    """The graph check itself can fail: a training module importing plugin, and two modules importing each other."""
    for package in ("fhir_mapping", "hooks", "training", "plugin"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "training" / "job.py").write_text("def run():\n    from plugin.settings import Settings\n")
    (tmp_path / "plugin" / "settings.py").write_text("from plugin import confdoc\n")
    (tmp_path / "plugin" / "confdoc.py").write_text("from plugin.settings import Settings\n")
    edges = graph(tmp_path)
    assert upward(edges) == ["training.job:2 imports plugin.settings"]
    assert cycles(edges) == [["plugin.confdoc", "plugin.settings"]]


def _external(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_every_folder_of_code_is_a_package() -> None:
    """A folder of modules without __init__.py is left out of the built wheel (setuptools finds packages only)."""
    folders = {path.parent for package in ("fhir_mapping", "hooks", "training", "plugin")
               for path in (ROOT / package).rglob("*.py")}
    assert sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").exists()) == []
