"""In a gevent worker a PostgreSQL call waits cooperatively: other greenlets run while the server answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# As in `epidose serve`: psycopg is imported in the gunicorn master (the registry check), before the
# gevent worker patches the standard library; then the worker's calls run beside other greenlets.
WORKER = textwrap.dedent("""
    import json, sys, time
    import psycopg  # the master's import, before the patch
    from gevent import monkey
    monkey.patch_all()
    import gevent
    from training.database import PostgresDatabase

    database = PostgresDatabase(sys.argv[1])
    database.query("SELECT 1")  # connect and migrate first
    ticks = []

    def ticker():
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            ticks.append(time.monotonic())
            gevent.sleep(0.01)

    beside = gevent.spawn(ticker)
    gevent.sleep(0.05)
    started = time.monotonic()
    database.query("SELECT pg_sleep(0.4)")
    finished = time.monotonic()
    beside.join()
    print(json.dumps({"during": sum(started < t < finished for t in ticks),
                      "wait": psycopg.waiting.wait.__name__}))
""")


def _run_worker(url: str, **env: str) -> dict[str, object]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    output = subprocess.run([sys.executable, "-c", WORKER, url], capture_output=True, text=True, env=environment,
                            timeout=60, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_other_greenlets_run_while_postgres_answers(postgres_url: str) -> None:
    """A 0.4 s statement leaves the worker's other greenlets running (a tick every 10 ms goes on)."""
    result = _run_worker(postgres_url)
    assert result["wait"] != "wait_c"
    assert int(result["during"]) >= 15, result


def test_the_c_wait_would_hold_the_whole_worker(postgres_url: str) -> None:
    """The same call with psycopg's C wait (chosen by its own PSYCOPG_WAIT_FUNC, which is respected)
    stops every greenlet until the server answers: what gevent workers did before."""
    result = _run_worker(postgres_url, PSYCOPG_WAIT_FUNC="wait_c")
    assert result["wait"] == "wait_c"
    assert int(result["during"]) <= 1, result
