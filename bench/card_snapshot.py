"""Every card of the hand-written clinical charts, as canonical JSON: to compare two versions of decide.

For each chart of ``tests/clinical/charts`` (dates moved to today, as the clinical suite does), the
cards and the audit columns that ``plugin.decide.decide`` returns are written with their generated
uuids numbered in order of appearance, so two runs of the same code give the same bytes and two
versions of the decision path can be compared card for card:

    PYTHONPATH=OLD_TREE python bench/card_snapshot.py --model M --out old.json
    PYTHONPATH=$PWD     python bench/card_snapshot.py --model M --out new.json
    cmp old.json new.json

The code compared is the one on PYTHONPATH (the charts are this tree's). (MODEL_FOLDER: a model built by ``training.default_model.build_default_model``.) Prints the number of
charts and cards, and a digest of the output.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ROOT = Path(__file__).resolve().parents[1]
CHARTS = ROOT / "tests" / "clinical" / "charts"
# The audit columns every version of the service writes (training/database.py, migration 1).
AUDIT_COLUMNS = ("indicator", "model_version", "input_fingerprint", "recommended_mg_per_day",
                 "compared_mg_per_day", "raw_model_mg_per_day", "safety_adjustments")


def _audit_columns(audit: Any) -> dict[str, Any]:
    row = audit if isinstance(audit, dict) else (audit.columns() if hasattr(audit, "columns") else dataclasses.asdict(audit))
    return {key: list(row[key]) if key == "safety_adjustments" else row[key] for key in AUDIT_COLUMNS}


class Favouring:
    """The model with one dose class's score raised by ``lift``: its choice there is clear where allowed.

    The embedded model abstains on many charts; this one makes the cards offer the model's choice too,
    so the comparison covers that path. It answers both the old (``recommend``) and the new (``choose``)
    interfaces of the decision path.
    """

    def __init__(self, model: Any, favour: int, lift: float = 50.0) -> None:
        self.model, self.favour, self.lift = model, favour, lift
        self.version = f"{model.version}+favour{favour}"
        self.score_kind = model.score_kind
        self.confidence_thresholds = model.confidence_thresholds

    def model_input(self, values: Any, observed: Any) -> Any:
        return self.model.model_input(values, observed)

    def coverage(self, model_input: Any) -> Any:
        return self.model.coverage(model_input)

    def scores(self, model_input: Any) -> Any:
        scores = self.model.scores(model_input).copy()
        scores[:, self.favour] += self.lift
        return scores

    def choose(self, model_input: Any, allowed: Any) -> tuple[int, Any, int]:
        import numpy as np

        from training.inference import masked_argmax

        scores = self.scores(model_input)[0]
        return int(masked_argmax(scores, np.asarray(allowed, dtype=bool))[0]), scores, int(np.argmax(scores))

    def recommend(self, values: Any, observed: Any, allowed: Any) -> tuple[int, Any, int]:
        return self.choose(self.model_input(values, observed), allowed)


def snapshot(model_folder: Path, today: date) -> dict[str, Any]:
    from training.inference import load_inference_model

    model = load_inference_model(model_folder)
    charts: dict[str, Any] = {}
    for name, variant in (("model", model), ("favour-500", Favouring(model, 4)), ("favour-1500", Favouring(model, 8))):
        charts.update({f"{chart}/{name}": cards for chart, cards in _cards(variant, today).items()})
    return charts


def _cards(model: Any, today: date) -> dict[str, Any]:
    from plugin.decide import decide
    from plugin.gather import Gathered
    from tests.clinical.test_charts import load_chart

    charts: dict[str, Any] = {}
    for path in sorted(CHARTS.glob("*.json")):
        request, _ = load_chart(path)
        outcome = decide(request["hook"], request["context"], Gathered(values=request["prefetch"]), model,
                         "https://cds.example.org/models/current", today=today,
                         questionnaire_url="https://cds.example.org/fhir/Questionnaire/bect-follow-up")
        text = json.dumps({"cards": outcome.cards, "audit": [_audit_columns(a) for a in outcome.audit],
                           "out_of_scope": outcome.out_of_scope}, sort_keys=True, default=str)
        numbered: dict[str, str] = {}
        for value in _uuids_in(text):
            numbered.setdefault(value, f"uuid-{len(numbered)}")
        for value, name in numbered.items():
            text = text.replace(value, name)
        charts[path.stem] = json.loads(text)
    return charts


def _uuids_in(text: str) -> list[str]:
    return UUID.findall(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--today", type=date.fromisoformat, default=date.today())
    args = parser.parse_args()
    charts = snapshot(args.model, args.today)
    text = json.dumps(charts, sort_keys=True, indent=1, ensure_ascii=False)
    args.out.write_text(text + "\n", encoding="utf-8")
    cards = sum(len(chart["cards"]) for chart in charts.values())
    print(f"{len(charts)} charts, {cards} cards, sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]} -> {args.out}")


if __name__ == "__main__":
    main()
