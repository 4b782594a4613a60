"""Benchmark: the note extractor's precision and recall per item, and mapping speed against the base.

Prints, per labelled set (tests/fhir_mapping/notes/): template sentences (the stored set and a fresh
seed), and the hand-written held-out batches (the three fresh ones also per language); then the extractor's
speed in sentences per second; then the in-process mapping path of bench/map.py (json.loads + collect_resources + build_timelines +
state_matrix on the 1,000-resource simulator-shaped Bundle) for this tree and for the commit this
branch started from (``git merge-base HEAD main``, extracted with ``git archive``), in the same run,
with their ratio; and the same path on an EHR-shaped Bundle (Conditions, encounter reasons, notes).
Last, per simulator dialect on the same 200 children: the share of visits whose seizure since the
last visit is known, its agreement with the simulated truth, and where the known values came from.

Run from the repository root:  python bench/notes.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhir_mapping.notes import read_sentence  # noqa: E402
from tests.fhir_mapping.note_scores import load, score, table  # noqa: E402
from training.simulator.notes import template_set  # noqa: E402

# Runs in a fresh interpreter with one tree on PYTHONPATH: median CPU ms of the mapping path.
TIMER = r"""
import json, statistics, sys, time
from bench.map import cohort_bundle
from fhir_mapping.build import build_timelines
from fhir_mapping.features import state_matrix
from fhir_mapping.inputs import collect_resources
text = json.dumps(json.load(open(sys.argv[1]))) if len(sys.argv) > 1 else json.dumps(cohort_bundle(1000))
def run():
    resources, _ = collect_resources(json.loads(text))
    for timeline in build_timelines(resources):
        state_matrix(timeline)
run()
cpu = []
for _ in range(30):
    start = time.process_time(); run(); cpu.append((time.process_time() - start) * 1000)
print(statistics.median(cpu))
"""


def cpu_ms(tree: Path, bundle: Path | None = None) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    args = [sys.executable, "-c", TIMER] + ([str(bundle)] if bundle else [])
    return float(subprocess.run(args, check=True, capture_output=True, text=True, cwd=tree, env=env).stdout.strip())


def base_tree(folder: Path) -> str:
    base = subprocess.run(["git", "merge-base", "HEAD", "main"], check=True, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    archive = subprocess.run(["git", "archive", "--format=tar", base, "fhir_mapping", "tests", "bench", "training", "plugin", "hooks"], check=True, capture_output=True, cwd=ROOT).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return base[:10]


def ehr_bundle(path: Path) -> int:
    """An EHR-shaped Bundle of simulated children (training.simulator.fhir, dialect ehr), 1,000 resources or more."""
    from training.simulator.cohort import simulate_cohort
    from training.simulator.fhir import child_resources

    resources: list[dict] = []
    for run in simulate_cohort(40, seed=3):
        resources += child_resources(run, dialect="ehr")
        if len(resources) >= 1000:
            break
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}))
    return len(resources)


def dialect_figures(children: int = 200, seed: int = 21) -> None:
    from collections import Counter

    from fhir_mapping.build import build_timeline
    from training.simulator.cohort import simulate_cohort
    from training.simulator.fhir import child_resources

    runs = simulate_cohort(children, seed)
    for dialect in ("epidose", "ehr", "mixed"):
        total = known = agree = 0
        kinds: Counter[str] = Counter()
        for run in runs:
            truth = {v.date: v.seizure_since_last_visit for v in run.visits}
            for visit in build_timeline(child_resources(run, dialect=dialect), run.child.patient_id).visits:
                total += 1
                if visit.seizure_since_last_visit is not None:
                    known += 1
                    agree += visit.seizure_since_last_visit == truth[visit.date]
                    kinds[visit.provenance["seizure_since_last_visit"].kind] += 1
        shares = ", ".join(f"{k} {n / known:.1%}" for k, n in kinds.most_common())
        print(f"dialect {dialect:8}: {total} visits, seizure since last visit known {known / total:.1%}, agrees with truth {agree / known:.1%}; from {shares}")


def main() -> None:
    sets = {
        "templates (stored, 240)": load("templates.jsonl"),
        "templates (fresh seed 7, 300)": template_set(300, seed=7),
        "hand-written held-out 1 (70)": load("handwritten_heldout.jsonl"),
        "hand-written held-out 2 (70)": load("handwritten_heldout2.jsonl"),
        "hand-written held-out 3 (40)": load("handwritten_heldout3.jsonl"),
        "hand-written, all (180)": load("handwritten_heldout.jsonl") + load("handwritten_heldout2.jsonl") + load("handwritten_heldout3.jsonl"),
    }
    for label, file in (("hand-written fresh", "handwritten_fresh.jsonl"), ("hand-written fresh 2", "handwritten_fresh2.jsonl"), ("hand-written fresh 3", "handwritten_fresh3.jsonl")):
        fresh = load(file)
        sets[f"{label} ({len(fresh)})"] = fresh
        for language, name in (("en", "English"), ("zh", "Chinese")):
            rows = [row for row in fresh if row["language"] == language]
            sets[f"{label}, {name} ({len(rows)})"] = rows
    for name, rows in sets.items():
        scores, errors = score(rows)
        print(f"== {name}: {len(errors)} item errors")
        print(table(scores))
    sentences = [r["text"] for rows in sets.values() for r in rows]
    start = time.process_time()
    for _ in range(5):
        for text in sentences:
            read_sentence(text)
    seconds = time.process_time() - start
    print(f"extractor: {5 * len(sentences) / seconds:,.0f} sentences/s (CPU, {len(sentences)} sentences x 5)")
    from fhir_mapping.notes import MAX_NOTE_CHARS, read_text

    for name, text in (("run-on English mentions", "seizure " * (MAX_NOTE_CHARS // 8)), ("run-on Chinese clauses", "无发作，" * (MAX_NOTE_CHARS // 4))):
        text = text[: MAX_NOTE_CHARS - 1]
        start = time.process_time()
        read_text(text)
        print(f"worst case, {name} ({len(text)} characters, the longest read): {(time.process_time() - start) * 1000:.0f} ms CPU")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as folder:
        base = base_tree(Path(folder))
        before, after = cpu_ms(Path(folder)), cpu_ms(ROOT)
        print(f"map in process, 1,000-resource simulator Bundle, median CPU ms of 30: base {base} {before:.1f}, this tree {after:.1f} = {after / before:.2f}x")
        bundle = Path(folder) / "ehr.json"
        count = ehr_bundle(bundle)
        ehr_before, ehr_after = cpu_ms(Path(folder), bundle), cpu_ms(ROOT, bundle)
        print(f"map in process, {count}-resource EHR-dialect Bundle (notes, Conditions): base {ehr_before:.1f} (reads no notes), this tree {ehr_after:.1f} = {ehr_after / ehr_before:.2f}x")
    dialect_figures()


if __name__ == "__main__":
    main()
