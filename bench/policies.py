"""Every policy under every PD profile: one command from a fresh cohort to the table in RESULTS.md.

Simulates a cohort under the default (sourced) exposure–response profile, trains every study
configuration on it, replays each policy, the physician and the oracle under every PD profile on the
same held-out children (training.evaluation.study), and prints the sensitivity table with the wall and
CPU time (``time.process_time``) of each phase, plus the six-month recurrence of both profiles at
0/20/30/40/60 mg/kg/day (the calibration figures).

Beside the label-bounds oracle the table has the oracle held to the rails (the clairvoyant search of
training.evaluation.railed_bound on the same held-out children, ``--no-railed-bound`` to leave it out)
and a second gap-closed column against it; then the oracle's lead over the physician decomposed on
``--decomposition-children`` fresh children (bench/rails.py: oracle_bounds).

    python bench/policies.py [--patients 10000] [--seed 7] [--steps N] [--configs A,B] [--out DIR [--reuse]]
                             [--no-railed-bound] [--decomposition-children 500]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.rails import oracle_bounds, render_decomposition  # noqa: E402
from training.evaluation.study import STUDY_CONFIGS, render_sensitivity, run_study  # noqa: E402
from training.simulator.calibration import six_month_recurrence  # noqa: E402
from training.simulator.cohort import write_cohort  # noqa: E402
from training.simulator.config import DEFAULT_CONFIG, PD_PROFILE_NAMES, with_pd_profile  # noqa: E402
from training.simulator.patients import draw_cohort  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--steps", type=int, default=None, help="gradient steps per configuration (default: each configuration's own)")
    parser.add_argument("--configs", default=",".join(STUDY_CONFIGS))
    parser.add_argument("--out", type=Path, default=None, help="keep the cohort and the study here (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="resume in OUT: keep its cohort (same size and seed) and trained models")
    parser.add_argument("--no-railed-bound", dest="railed_bound", action="store_false",
                        help="leave out the oracle held to the rails (about 0.1 s of CPU per held-out child and profile)")
    parser.add_argument("--decomposition-children", type=int, default=500,
                        help="fresh children (cohort seed 1, sourced profile) for the oracle decomposition (0: none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="epidose-policies-") as temporary:
        root = args.out or Path(temporary)
        wall, cpu = time.perf_counter(), time.process_time()
        calibration = root / "cohort" / "calibration.json"
        previous = json.loads(calibration.read_text(encoding="utf-8")) if args.reuse and calibration.exists() else None
        if previous is None or previous["seed"] != args.seed or previous["cohort"]["patients"] != args.patients:
            summary_cohort = write_cohort(root / "cohort", args.patients, args.seed)
            previous = summary_cohort.report
        checks = previous["checks"]
        print(f"cohort: {previous['cohort']['patients']} children, {previous['cohort']['visits']} visits, calibration "
              f"{sum(checks.values())}/{len(checks)}; wall {time.perf_counter() - wall:.1f} s, CPU {time.process_time() - cpu:.1f} s",
              flush=True)
        for profile in PD_PROFILE_NAMES:
            config = with_pd_profile(DEFAULT_CONFIG, profile)
            children = draw_cohort(min(args.patients, 3000), 4, config)  # each child's PD drawn in its own world
            recurrence = ", ".join(f"{dose}: {100 * six_month_recurrence(children, config, dose):.1f}%" for dose in (0, 20, 30, 40, 60))
            print(f"six-month recurrence, {profile} (mg/kg/day): {recurrence}")
        wall, cpu = time.perf_counter(), time.process_time()
        summary = run_study(root / "cohort", root / "study", steps=args.steps, seed=0, configs=tuple(args.configs.split(",")),
                            progress=False, reuse=args.reuse, railed_bound=args.railed_bound)
        print(f"study: wall {time.perf_counter() - wall:.1f} s, CPU {time.process_time() - cpu:.1f} s", flush=True)
        print()
        print(render_sensitivity(summary))
        if args.decomposition_children > 0:
            wall, cpu = time.perf_counter(), time.process_time()
            bounds = oracle_bounds(args.decomposition_children, 1, "sourced", clairvoyant=True)
            print(render_decomposition(bounds))
            print(f"\ndecomposition: wall {time.perf_counter() - wall:.1f} s, CPU {time.process_time() - cpu:.1f} s", flush=True)


if __name__ == "__main__":
    main()
