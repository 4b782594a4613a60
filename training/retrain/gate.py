"""The promotion gate: pure, metrics dicts in, decision out.

The gate (every check must pass to promote):

1. the candidate makes 0 recommendations outside the label bounds on the held-out visits;
2. its top-1 agreement with the physicians drops by at most ``agreement_margin`` from the champion's;
3. for the gated off-policy estimator(s), the candidate's 95% lower bound is not below the champion's;
4. on simulated data (true values available), the candidate's true value is not below the champion's;
5. on simulated data, when a champion exists, the candidate beats the physician under every PD profile
   (sourced and fitted exposure–response worlds): the lower 95% bound of its paired difference in true
   value with the physician on the held-out children is above 0 in each. A first model is promoted
   without it (a service needs some model), with the verdict recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# Off-policy estimators whose lower bound is gated when no single one is configured. FQE needs a
# fitted Q per policy and is left to the full evaluation report.
GATED_ESTIMATORS: Final = ("wis", "wdr")


def gate(
    candidate: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    *,
    agreement_margin: float,
    estimator: str | None = None,
) -> tuple[bool, str, dict[str, Any]]:
    """(promote?, reason, every check with its figures). Pure: metrics dicts in, decision out."""
    checks: dict[str, Any] = {}
    failures: list[str] = []
    violations = int(candidate.get("safety_violations", 1))
    checks["safety"] = {"candidate": violations, "passed": violations == 0}
    if violations:
        failures.append(f"{violations} recommendation(s) outside the label bounds")
    verdict = candidate.get("beats_physician_everywhere")
    if verdict is not None:
        checks["beats_physician_everywhere"] = {**verdict, "enforced": champion is not None}
        if champion is not None and not verdict["passed"]:
            bounds = ", ".join(f"{p} {b:+.2f}" for p, b in verdict["ci_low_by_profile"].items())
            failures.append(f"does not beat the physician under every PD profile (lower bounds {bounds})")
    if champion is None:
        reason = "no model in service; first model promoted" if not failures else "; ".join(failures)
        return not failures, reason, checks

    drop = float(champion["top1_agreement"]) - float(candidate["top1_agreement"])
    passed = drop <= agreement_margin + 1e-12
    checks["agreement"] = {
        "candidate": candidate["top1_agreement"], "champion": champion["top1_agreement"],
        "drop": drop, "margin": agreement_margin, "passed": passed,
    }
    if not passed:
        failures.append(f"top-1 agreement drops by {drop:.3f} (margin {agreement_margin:.3f})")

    names = [estimator] if estimator else [n for n in GATED_ESTIMATORS if n in candidate.get("ope", {})]
    for name in names:
        mine, theirs = candidate.get("ope", {}).get(name), champion.get("ope", {}).get(name)
        if mine is None or theirs is None:
            checks[f"ope_{name}"] = {"passed": False, "missing": True}
            failures.append(f"off-policy estimate {name} missing")
            continue
        passed = float(mine["ci_low"]) >= float(theirs["ci_low"]) - 1e-9
        checks[f"ope_{name}"] = {"candidate_ci_low": mine["ci_low"], "champion_ci_low": theirs["ci_low"], "passed": passed}
        if not passed:
            failures.append(f"{name} lower bound {mine['ci_low']:.2f} below the champion's {theirs['ci_low']:.2f}")

    mine_true, theirs_true = candidate.get("true_value"), champion.get("true_value")
    if mine_true is not None and theirs_true is not None:
        passed = float(mine_true) >= float(theirs_true)
        checks["true_value"] = {"candidate": mine_true, "champion": theirs_true, "passed": passed}
        if not passed:
            failures.append(f"true value {mine_true:.2f} below the champion's {theirs_true:.2f}")

    if failures:
        return False, "; ".join(failures), checks
    return True, "candidate at least as good and as safe as the champion", checks
