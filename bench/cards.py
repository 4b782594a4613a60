"""Benchmark: the time to decide one dose card, on the hand-written clinical charts.

For every chart of ``tests/clinical/charts`` (dates moved to today as the clinical suite does), the
service's decision path is timed in process: scope, mapping, data problems, clinical rails, the model,
honest confidence, the individual PK estimate when a level is on the chart, and the card text
(``plugin.decide.decide``). The baseline is the mapping alone on the same chart
(``collect_resources`` + ``build_timeline``), which any card pays. Prints, over the charts, the median
and the slowest of each chart's median, and the ratio to the baseline; charts with a measured level
apart (they run the PK estimate).

Run from the repository root:  python bench/cards.py --model MODEL_FOLDER [--repeat 21]
(MODEL_FOLDER: a model built by ``training.default_model.build_default_model``; without --model one is
built first, which takes a minute or two and is not timed).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhir_mapping.build import build_timeline  # noqa: E402
from fhir_mapping.inputs import collect_resources  # noqa: E402
from plugin.decide import decide  # noqa: E402
from plugin.gather import Gathered  # noqa: E402
from tests.clinical.test_charts import load_chart  # noqa: E402
from training.inference import load_inference_model  # noqa: E402


def _median_ms(call: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    folder = args.model
    if folder is None:
        from training.default_model import build_default_model

        folder = build_default_model(Path(tempfile.mkdtemp()) / "model", progress=False)
    model = load_inference_model(folder)
    today = date.today()
    rows = []
    for path in sorted((ROOT / "tests" / "clinical" / "charts").glob("*.json")):
        request, _ = load_chart(path)
        gathered = Gathered(values=request["prefetch"])
        context = request["context"]

        def card(request: dict = request, gathered: Gathered = gathered, context: dict = context) -> None:
            decide(request["hook"], context, gathered, model, "https://cds.example.org/models/current", today=today)

        def mapping(request: dict = request, context: dict = context) -> None:
            resources, _ = collect_resources(request["prefetch"])
            build_timeline(resources, context["patientId"], as_of=today)

        card()  # warm
        has_level = "30471-7" in str(request["prefetch"].get("labs"))
        rows.append((path.stem, has_level, _median_ms(card, args.repeat), _median_ms(mapping, args.repeat)))
    print(f"{len(rows)} charts, median of {args.repeat} runs each (ms)")
    print("| charts | n | card: median | card: slowest | mapping alone: median | ratio of medians |")
    print("|---|---|---|---|---|---|")
    for label, chosen in (("all", rows), ("with a measured level", [r for r in rows if r[1]]),
                          ("without a level", [r for r in rows if not r[1]])):
        if not chosen:
            continue
        cards, maps = [r[2] for r in chosen], [r[3] for r in chosen]
        print(f"| {label} | {len(chosen)} | {statistics.median(cards):.2f} | {max(cards):.2f} | "
              f"{statistics.median(maps):.2f} | {statistics.median(cards) / statistics.median(maps):.1f}× |")
    slowest = max(rows, key=lambda r: r[2])
    print(f"slowest chart: {slowest[0]} ({slowest[2]:.2f} ms)")


if __name__ == "__main__":
    main()
