"""How many held-out decisions a Q model scores beyond what the reward can reach.

The published reward is bounded by ±100 per visit, so a Q-value (a discounted sum of rewards) lies
within ±100/(1 − γ) (±1000 at γ = 0.9, ``training.inference.score_bound``); the service abstains on a
decision whose allowed doses score beyond it. For every Q model folder of a study this prints, on the
study's held-out test visits (the same split as ``bench/policies.py``), the share of decisions with an
allowed score beyond the bound, the largest and smallest allowed scores, the share of decisions
whose chosen dose scores beyond it and, from the study's summary.json when present, what the model
believes its policy is worth at first visits (mean Q(s₀, π(s₀))) against the true discounted return of
the same children replayed in the simulator under it. The last columns are what the service's
confidence check (``judge_confidence`` with the model's saved thresholds and coverage) says on those
decisions: the share it abstains on, and the share it abstains on because a score is out of range.

    python bench/q_bound.py --study DIR/study --cohort DIR/cohort [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.inference import load_inference_model, masked_argmax, score_bound  # noqa: E402
from training.pipeline import prepare  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, required=True)
    parser.add_argument("--cohort", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    _, _, dataset = prepare(args.cohort, args.seed)
    test = dataset.test
    print(f"{len(test)} held-out test visits of {len(dataset.splits['test'])} children")
    summary_path = args.study / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    print("| model | allowed score beyond the bound | chosen dose's score beyond it | allowed scores min … max | mean chosen Q "
          "| predicted Q(s₀, π(s₀)) | true discounted return | abstain | abstain: out of range |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for folder in sorted(p for p in args.study.iterdir() if (p / "metadata.json").exists()):
        model = load_inference_model(folder)
        if model.score_kind != "q":
            continue
        bound = score_bound(model.gamma)
        scores = model.scores(test.states)
        masks = np.asarray(test.masks, dtype=bool)
        allowed = np.where(masks, np.abs(scores), 0.0)
        chosen = masked_argmax(scores, masks)
        chosen_scores = scores[np.arange(len(scores)), chosen]
        coverage = model.coverage(test.states) / 100.0
        verdicts = [model.confidence(row, allowed_row, share) for row, allowed_row, share in zip(scores, masks, coverage, strict=True)]
        abstain = np.mean([v.level == "abstain" for v in verdicts])
        out_of_range = np.mean([v.level == "abstain" and "out-of-range" in v.kinds for v in verdicts])
        predicted = summary.get("policies", {}).get(folder.name, {}).get("mean_predicted_q")
        truth = (summary.get("true_value") or {}).get(folder.name, {}).get("discounted_return")
        print(f"| {folder.name} | {100 * np.mean(allowed.max(axis=1) > bound):.1f}% | "
              f"{100 * np.mean(np.abs(chosen_scores) > bound):.1f}% | "
              f"{scores[masks].min():.0f} … {scores[masks].max():.0f} | {chosen_scores.mean():.0f} | "
              f"{'n/a' if predicted is None else f'{predicted:.0f}'} | {'n/a' if truth is None else f'{truth:.0f}'} | "
              f"{100 * abstain:.1f}% | {100 * out_of_range:.1f}% |")


if __name__ == "__main__":
    main()
