"""Run a benchmark script of several source trees in interleaved rounds, and compare what each wrote.

Each tree runs its own copy of the script (``TREE/bench/NAME``) with ``PYTHONPATH=TREE``; the script's
last line of output is one JSON object of figures. In the first round each tree also writes a JSON list
(one item per body: cards, timelines...) to a file, and :func:`same_outputs` compares the lists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def run_interleaved(trees: Sequence[Path], rounds: int, script: str, arguments: list[str], dump_option: str
                    ) -> tuple[dict[Path, list[dict[str, Any]]], list[Path]]:
    """Every tree's figures per round, and the file each tree wrote its per-body outputs to (first round)."""
    folder = Path(tempfile.mkdtemp())
    dumps = [folder / f"{index}.json" for index in range(len(trees))]
    results: dict[Path, list[dict[str, Any]]] = {tree: [] for tree in trees}
    for round_ in range(rounds):
        for tree, dump in zip(trees, dumps, strict=True):
            extra = [dump_option, str(dump)] if round_ == 0 else []
            out = subprocess.run([sys.executable, str(tree / "bench" / script), *arguments, "--json", *extra],
                                 env=dict(os.environ, PYTHONPATH=str(tree.resolve())), check=True,
                                 capture_output=True, text=True, cwd=tree).stdout
            results[tree].append(json.loads(out.strip().splitlines()[-1]))
    return results, dumps


def same_outputs(trees: Sequence[Path], dumps: Sequence[Path], what: str,
                 report: Callable[[str], None] = print) -> bool:
    """Whether every tree wrote the first tree's outputs, body by body; says how many agree."""
    reference = json.loads(dumps[0].read_text())
    same = True
    for tree, dump in zip(trees[1:], dumps[1:], strict=True):
        other = json.loads(dump.read_text())
        differing = [i for i, (a, b) in enumerate(zip(reference, other, strict=True)) if a != b]
        report(f"{what} of {tree} vs {trees[0]}: {len(reference) - len(differing)}/{len(reference)} bodies identical"
               + (f"; differing bodies {differing[:10]}" if differing else ""))
        same = same and not differing
    return same
