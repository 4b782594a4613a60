"""Two service instances on different ports sharing one real PostgreSQL server, as two hosts would.

Each "host" has its own data folder; they share the database (EPIDOSE_DATABASE_URL), the model folder
(EPIDOSE_MODEL_DIR, the shared model storage) and the patient-hash key. A token used on one host is
refused on the other, audits from both land in the one database, a promotion made through one host is
served by the other within the reload interval, and a retraining run started on both hosts runs once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import requests

from tests.plugin.fixtures import ISSUER, Signer, hook_request, patient_resources
from tests.plugin.test_serve import serving
from training.artifact.registry import DatabasePointer, ModelRegistry
from training.database import PostgresDatabase

pytestmark = pytest.mark.slow

PUBLIC = "https://cds.example-hospital.org"  # the load balancer's URL: the JWT audience on every host
PV = "/cds-services/epidose-patient-view"
RELOAD_SECONDS = 1.0


def host_env(shared: Path, host: str, url: str, signer: Signer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPIDOSE_")}
    env.update({"EPIDOSE_DATA_DIR": str(shared / host), "EPIDOSE_MODEL_DIR": str(shared / "models"),
                "EPIDOSE_DATABASE_URL": url, "EPIDOSE_HASH_KEY": "one-key-for-the-deployment",
                "EPIDOSE_PUBLIC_BASE_URL": PUBLIC, "EPIDOSE_BUILD_DEFAULT_MODEL": "off",
                "EPIDOSE_MODEL_CHECK_SECONDS": str(RELOAD_SECONDS), "EPIDOSE_RESPONSE_CACHE_SIZE": "0",
                "EPIDOSE_JWKS": json.dumps({ISSUER: str(signer.jwks_path)})})
    return env


def second_model(model: Path, folder: Path) -> Path:
    """The same network under another model version name, so the hosts' answers tell which one serves."""
    shutil.copytree(model, folder)
    metadata = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    metadata["version"] = "second-" + str(metadata["version"])
    (folder / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    return folder


@pytest.fixture
def deployment(postgres_url: str, small_model: Path, tmp_path: Path) -> Iterator[tuple[list[str], Signer, Path, str]]:
    shared = tmp_path / "deployment"
    database = PostgresDatabase(postgres_url)
    registry = ModelRegistry(shared / "models", pointer=DatabasePointer(database))
    registry.promote(registry.add(small_model))
    database.close()
    signer = Signer(tmp_path)
    with ExitStack() as stack:
        bases = [stack.enter_context(serving(host_env(shared, host, postgres_url, signer))) for host in ("a", "b")]
        yield bases, signer, shared, postgres_url


def post(base: str, signer: Signer, *, token: str | None = None, patient: str = "child-1") -> requests.Response:
    token = token or signer.token(PUBLIC + PV)
    return requests.post(base + PV, json=hook_request("patient-view", patient_resources(patient=patient), patient=patient),
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)


def served_model(base: str) -> str:
    return str(requests.get(base + "/readyz", timeout=5).json()["model"])


def test_a_token_used_on_one_host_is_refused_on_the_other(deployment: tuple[list[str], Signer, Path, str]) -> None:
    (host_a, host_b), signer, _, _ = deployment
    token = signer.token(PUBLIC + PV)
    assert post(host_a, signer, token=token).status_code == 200
    replayed = post(host_b, signer, token=token)
    assert replayed.status_code == 401 and replayed.content == b""
    assert post(host_b, signer).status_code == 200  # a fresh token passes there


def test_audits_from_both_hosts_land_in_the_one_database(deployment: tuple[list[str], Signer, Path, str]) -> None:
    (host_a, host_b), signer, _, url = deployment
    cards = [post(base, signer, patient=patient).json()["cards"] for base, patient in
             ((host_a, "child-a"), (host_b, "child-b"), (host_a, "child-c"))]
    served = {card["uuid"] for response in cards for card in response}
    with psycopg.connect(url) as connection:
        stored = {row[0] for row in connection.execute("SELECT card_uuid FROM audit").fetchall()}
    assert served and served <= stored
    # Feedback on a card from host A, sent to host B (the load balancer chose another host), is accepted.
    card = cards[0][0]["uuid"]
    feedback = requests.post(host_b + PV + "/feedback", json={"feedback": [{"card": card, "outcome": "accepted"}]},
                             headers={"Authorization": "Bearer " + signer.token(PUBLIC + PV + "/feedback")}, timeout=10)
    assert feedback.status_code == 200 and feedback.json()["stored"] == 1


def test_a_promotion_through_one_host_is_served_by_the_other(deployment: tuple[list[str], Signer, Path, str],
                                                             small_model: Path, tmp_path: Path) -> None:
    (host_a, host_b), signer, shared, url = deployment
    first = served_model(host_b)
    env_a = host_env(shared, "a", url, signer)
    database = PostgresDatabase(url)
    try:  # the scheduler's part: store a candidate on the shared model storage
        version = ModelRegistry(shared / "models", pointer=DatabasePointer(database)).add(second_model(small_model, tmp_path / "second"))
    finally:
        database.close()
    promoted = subprocess.run([sys.executable, "-m", "plugin.cli", "models", "promote", version], env=env_a,
                              capture_output=True, text=True, timeout=120, check=False)
    assert promoted.returncode == 0, promoted.stderr
    promoted_at = time.monotonic()
    while served_model(host_b) == first and time.monotonic() - promoted_at < 10 * RELOAD_SECONDS:
        time.sleep(0.1)
    assert served_model(host_b) == "second-" + first
    assert time.monotonic() - promoted_at <= RELOAD_SECONDS + 2.0  # within the reload interval (and a request)
    rolled = subprocess.run([sys.executable, "-m", "plugin.cli", "models", "rollback"],
                            env=host_env(shared, "b", url, signer), capture_output=True, text=True, timeout=120,
                            check=False)
    assert rolled.returncode == 0, rolled.stderr
    deadline = time.monotonic() + 10 * RELOAD_SECONDS
    while served_model(host_a) != first and time.monotonic() < deadline:
        time.sleep(0.1)
    assert served_model(host_a) == first


def advisory_lock_held(url: str, name: str) -> bool:
    """Whether some session holds the named advisory lock (read from pg_locks, without taking it)."""
    key = PostgresDatabase.lock_key(name) & (2**64 - 1)
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                 "AND classid = %s AND objid = %s AND objsubid = 1",
                                 (key >> 32, key & 0xFFFFFFFF)).fetchone()
    return bool(row and row[0])


def wait_for_lock(process: subprocess.Popen[bytes], url: str, name: str) -> None:
    """Until ``process`` holds the named lock (it must not exit first)."""
    deadline = time.monotonic() + 60
    while not advisory_lock_held(url, name):
        assert process.poll() is None and time.monotonic() < deadline, f"the first host never took the {name} lock"
        time.sleep(0.05)


def test_a_retraining_run_started_on_both_hosts_runs_once(postgres_url: str, small_cohort: Path,
                                                          tmp_path: Path) -> None:
    shared = tmp_path / "deployment"
    signer = Signer(tmp_path)
    envs = []
    for host in ("a", "b"):
        env = host_env(shared, host, postgres_url, signer)
        # Enough training steps that host A still runs when host B tries (seconds on this machine).
        env.update({"EPIDOSE_RETRAIN_SOURCE": str(small_cohort), "EPIDOSE_RETRAIN_INITIAL_STEPS": "1500",
                    "EPIDOSE_RETRAIN_BEHAVIOUR_STEPS": "30", "EPIDOSE_RETRAIN_BOOTSTRAP": "30"})
        envs.append(env)
    command = [sys.executable, "-m", "plugin.cli", "retrain", "--once"]
    first = subprocess.Popen(command, env=envs[0], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_lock(first, postgres_url, "retrain-run")
        second = subprocess.run(command, env=envs[1], capture_output=True, text=True, timeout=120, check=False)
        assert first.poll() is None, "host A finished before host B tried: the test proves nothing"
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0, err.decode()[-2000:]
    # The refused run is recorded (decision "failed", exit 1, as on one host) and says why.
    assert json.loads(second.stdout)["reason"] == "another retraining run is in progress", second.stderr[-2000:]
    history = subprocess.run([sys.executable, "-m", "plugin.cli", "retrain", "--history"], env=envs[1],
                             capture_output=True, text=True, timeout=60, check=True)
    records = [json.loads(line) for line in history.stdout.splitlines()]
    assert len(records) == 2  # both hosts' records, read from either host
    skipped = [r for r in records if r["reason"] == "another retraining run is in progress"]
    ran = [r for r in records if r not in skipped]
    assert len(skipped) == 1 and len(ran) == 1
    assert ran[0]["decision"] == "promoted" and ran[0]["run_id"] == json.loads(out)["run_id"]
    assert not (shared / "a" / "retrain" / "runs.jsonl").exists()  # records live in the shared database


def test_one_scheduler_for_the_deployment(postgres_url: str, tmp_path: Path) -> None:
    """A scheduler on host B refuses to start while host A's holds the deployment's scheduler lock."""
    shared = tmp_path / "deployment"
    signer = Signer(tmp_path)
    envs = [{**host_env(shared, host, postgres_url, signer), "EPIDOSE_RETRAIN_SCHEDULE": "1d"} for host in ("a", "b")]
    command = [sys.executable, "-m", "plugin.cli", "scheduler"]
    first = subprocess.Popen(command, env=envs[0], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_lock(first, postgres_url, "scheduler")
        second = subprocess.run(command, env=envs[1], capture_output=True, text=True, timeout=60, check=False)
    finally:
        first.terminate()
        first.wait(timeout=30)
    assert second.returncode != 0 and "already running" in second.stderr
    assert str(urlsplit(postgres_url).password) not in second.stderr  # the URL's secret is never shown
