"""Behind gunicorn a scrape reaches one worker; its counters still count every worker's calls.

``epidose serve`` runs with 2 sync workers (one call at a time each, so concurrent calls reach both);
once both have answered N calls between them, every scrape, whichever worker answers it, counts N.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support.fhir_server import free_port
from tests.support.service import wait_until_healthy

pytestmark = pytest.mark.slow
CALLS = 40
BATCH = 10
SCRAPES = 8


def _requests_total(text: str) -> float:
    """The sum of every epidose_requests_total series of one scrape."""
    return sum(float(value) for value in re.findall(r"^epidose_requests_total\{[^}]*\} (\S+)$", text, re.MULTILINE))


def test_counters_sum_over_workers_whichever_answers(tmp_path: Path) -> None:
    """At least 40 calls, sent until both workers have counted some; 8 scrapes on fresh connections each count
    them all, and the private folder is removed at exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EPIDOSE_", "PROMETHEUS_"))}
    env.update({"EPIDOSE_DATA_DIR": str(tmp_path / "data"), "EPIDOSE_BUILD_DEFAULT_MODEL": "off", "EPIDOSE_AUTH": "off",
                "EPIDOSE_BENCH_CONSTANT_CARD": "on", "TMPDIR": str(tmp_path)})
    process = subprocess.Popen([sys.executable, "-m", "plugin.cli", "serve", "--port", str(port), "--workers", "2",
                                "--worker-class", "sync"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, base)
        folders = list(tmp_path.glob("epidose-metrics-*"))
        assert len(folders) == 1 and folders[0].stat().st_mode & 0o777 == 0o700

        def call(_: int) -> int:
            with requests.Session() as session:  # a fresh connection per call: any worker may take it
                return session.post(base + "/cds-services/bench-constant", json={}, timeout=10).status_code

        def writers() -> set[str]:
            return {path.name.rsplit("_", 1)[-1] for path in folders[0].glob("counter_*.db")}

        sent = 0
        deadline = time.monotonic() + 60  # the second worker may still be loading the app when the first answers
        with ThreadPoolExecutor(max_workers=6) as pool:
            while sent < CALLS or (len(writers()) < 2 and time.monotonic() < deadline):
                assert list(pool.map(call, range(BATCH))) == [200] * BATCH
                sent += BATCH
        assert len(writers()) == 2, f"{sent} calls reached {len(writers())} worker(s): the test proves nothing"
        for _ in range(SCRAPES):
            with requests.Session() as session:
                scrape = session.get(base + "/metrics", timeout=10)
            assert scrape.status_code == 200
            assert _requests_total(scrape.text) == sent
            assert "worker=" not in scrape.text
    finally:
        process.terminate()
        process.communicate(timeout=20)
    assert not list(tmp_path.glob("epidose-metrics-*"))
