"""Benchmark of client JWT checking: the negative matrix (each case a bare 401, and why) and what checking costs.

Builds the service in-process (Flask test client, no network) with the issuer's key set pinned in a file,
and calls discovery: with authentication off (the baseline), with a valid ES384 token, and with each
invalid token of the test matrix (tests/plugin/test_security.py). Prints, per case, the status, the body
length, the reason logged and counted, and the median time per call over ``--calls`` fresh tokens, with
its ratio to the baseline measured in the same run.

    python bench/auth.py [--calls 200]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flask.logging import default_handler  # noqa: E402

from plugin import create_app  # noqa: E402
from plugin.settings import Settings  # noqa: E402
from tests.plugin.fixtures import ISSUER, Signer  # noqa: E402
from tests.plugin.test_security import DISCOVERY, NEGATIVES  # noqa: E402

BASE = DISCOVERY.removesuffix("/cds-services")


class Reasons(logging.Handler):
    """Keeps the last refusal line the service logged."""

    def __init__(self) -> None:
        super().__init__()
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("JWT refused"):
            self.last = message


def _client(folder: Path, signer: Signer, auth: bool) -> Any:
    settings = Settings.from_env({}, auth=auth, public_base_url=BASE, data_dir=folder / ("on" if auth else "off"),
                                 hash_key="bench", jwks={ISSUER: str(signer.jwks_path)}, build_default_model=False,
                                 log_level="WARNING")
    app = create_app(settings)
    return app, app.test_client()


def _median_ms(client: Any, tokens: list[str | None]) -> float:
    timings = []
    for token in tokens:
        headers = {} if token is None else {"Authorization": token if " " in token else f"Bearer {token}"}
        started = time.perf_counter()
        client.get("/cds-services", headers=headers)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        signer = Signer(folder)
        _, baseline_client = _client(folder, signer, auth=False)
        app, client = _client(folder, signer, auth=True)
        reasons = Reasons()
        app.logger.removeHandler(default_handler)  # one refusal line per call would drown the table
        app.logger.propagate = False
        app.logger.addHandler(reasons)
        baseline = _median_ms(baseline_client, [None] * args.calls)
        valid = _median_ms(client, [signer.token(DISCOVERY) for _ in range(args.calls)])
        print(f"discovery, median of {args.calls} calls (in-process, Python {sys.version.split()[0]})")
        print(f"{'case':28} {'status':>6} {'body':>4}  {'ms':>6} {'× off':>6}  reason logged")
        print(f"{'auth off (baseline)':28} {200:>6} {'-':>4}  {baseline:6.3f} {1.0:6.2f}")
        print(f"{'valid ES384 token':28} {200:>6} {'-':>4}  {valid:6.3f} {valid / baseline:6.2f}")
        all_bare = True
        for case in sorted(NEGATIVES):
            build: Callable[[Signer], str | None] = NEGATIVES[case][0]
            token = build(signer)
            headers = {} if token is None else {"Authorization": token if " " in token else f"Bearer {token}"}
            response = client.get("/cds-services", headers=headers)
            body = len(response.get_data())
            all_bare &= response.status_code == 401 and body == 0
            median = _median_ms(client, [build(signer) for _ in range(args.calls)])
            reason = reasons.last.removeprefix("JWT refused: ").split(" (")[0]
            print(f"{case:28} {response.status_code:>6} {body:>4}  {median:6.3f} {median / baseline:6.2f}  {reason}")
        print(f"every invalid token a bare 401: {'yes' if all_bare else 'NO'}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    main()
