"""Throughput of two service instances sharing PostgreSQL against one, with one on SQLite as the baseline.

Starts a real PostgreSQL server (tests/support/postgres.py; fsync on, as in production) and three
``epidose serve`` processes with one worker each on 127.0.0.1: one on its own SQLite file (today's
default), two sharing the PostgreSQL database and the model folder (two "hosts"). Every request is a
patient-view call with a full prefetch (1 Patient, 100 Observations, 20 MedicationRequests), the
response cache off, so each runs the whole pipeline and writes its audit records. The load comes from
``--clients`` processes with one keep-alive connection each; for two instances they alternate between
the two ports (a round-robin load balancer). The three set-ups run in interleaved rounds, so other
work on the machine loads them alike; medians are reported, with the CPU seconds the service workers
and the PostgreSQL server used per 1,000 requests.

    python bench/pg.py [--seconds 6] [--rounds 3] [--clients 8] [--worker-class gevent|gthread|sync] [--c-wait]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serve import free_port, prepare_model, request_body  # noqa: E402
from tests.support.postgres import running_postgres  # noqa: E402

PV = "/cds-services/epidose-patient-view"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def client(port: int, body: bytes, seconds: float, results: Any) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies, errors = [], 0
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        started = time.perf_counter()
        connection.request("POST", PV, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        errors += response.status != 200
    results.put((latencies, errors))


def load(ports: list[int], body: bytes, seconds: float, clients: int) -> dict[str, float]:
    results: Any = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=client, args=(ports[i % len(ports)], body, seconds, results))
               for i in range(clients)]
    began = time.monotonic()
    for worker in workers:
        worker.start()
    collected = [results.get(timeout=seconds + 60) for _ in workers]
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - began
    latencies = sorted(x for chunk, _ in collected for x in chunk)
    return {"rps": len(latencies) / elapsed, "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
            "errors": float(sum(e for _, e in collected)), "requests": float(len(latencies))}


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1) as answer:  # noqa: S310 (loopback)
                if answer.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.3)
    raise SystemExit(f"{base} did not become ready: " + (process.stderr.read().decode() if process.stderr else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds per set-up per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8, help="client processes (one connection each)")
    parser.add_argument("--worker-class", default="gevent", choices=("gevent", "gthread", "sync"))
    parser.add_argument("--c-wait", action="store_true",
                        help="add one PostgreSQL instance on psycopg's C wait (PSYCOPG_WAIT_FUNC=wait_c): gevent "
                             "workers before they switched to the cooperative wait")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="epidose-bench-pg-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("EPIDOSE_")}
    base_env.update({"EPIDOSE_AUTH": "off", "EPIDOSE_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
                     "EPIDOSE_RESPONSE_CACHE_SIZE": "0", "EPIDOSE_BUILD_DEFAULT_MODEL": "off",
                     "EPIDOSE_HASH_KEY": "bench-hash-key", "EPIDOSE_WORKER_CLASS": args.worker_class})
    prepare_model(work / "sqlite", {**base_env, "EPIDOSE_DATA_DIR": str(work / "sqlite")})
    body = json.dumps(request_body()).encode()
    processes: list[subprocess.Popen[bytes]] = []
    with running_postgres(fsync=True) as server:
        url = server.create_database()
        shared_models = work / "shared-models"
        code = ("import sys; from pathlib import Path; from training.artifact.registry import open_registry; "
                "r = open_registry(Path(sys.argv[1]), database_url=sys.argv[3]); r.promote(r.add(Path(sys.argv[2])))")
        subprocess.run([sys.executable, "-c", code, str(shared_models), str(work / "sqlite" / "model-build"), url],
                       check=True, env=base_env)
        hosts = {"sqlite": {"EPIDOSE_DATA_DIR": str(work / "sqlite")},
                 "pg-a": {"EPIDOSE_DATA_DIR": str(work / "a"), "EPIDOSE_MODEL_DIR": str(shared_models),
                          "EPIDOSE_DATABASE_URL": url},
                 "pg-b": {"EPIDOSE_DATA_DIR": str(work / "b"), "EPIDOSE_MODEL_DIR": str(shared_models),
                          "EPIDOSE_DATABASE_URL": url}}
        if args.c_wait:
            # What gevent workers did before they switched psycopg to its cooperative wait.
            hosts["pg-c-wait"] = {"EPIDOSE_DATA_DIR": str(work / "c"), "EPIDOSE_MODEL_DIR": str(shared_models),
                                  "EPIDOSE_DATABASE_URL": url, "PSYCOPG_WAIT_FUNC": "wait_c"}
        ports: dict[str, int] = {}
        try:
            for name, extra in hosts.items():
                ports[name] = free_port()
                process = subprocess.Popen([sys.executable, "-m", "plugin.cli", "serve", "--port", str(ports[name]),
                                            "--workers", "1"], env={**base_env, **extra},
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                processes.append(process)
            for name, process in zip(hosts, processes, strict=True):
                wait_ready(f"http://127.0.0.1:{ports[name]}", process)
            postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
            setups = {"1 instance, SQLite": ["sqlite"], "1 instance, PostgreSQL": ["pg-a"],
                      "2 instances, PostgreSQL": ["pg-a", "pg-b"]}
            if args.c_wait:
                setups["1 instance, PG, C wait"] = ["pg-c-wait"]
            load(list(ports.values()), body, 2, args.clients)  # warm-up
            rows: dict[str, list[dict[str, float]]] = {name: [] for name in setups}
            for _ in range(args.rounds):
                for name, targets in setups.items():
                    services = [pid for process in processes for pid in descendants(process.pid)]
                    database = descendants(postmaster)
                    before = (cpu_seconds(services), cpu_seconds(database))
                    result = load([ports[t] for t in targets], body, args.seconds, args.clients)
                    thousands = result["requests"] / 1000
                    result["service_cpu_per_1k"] = (cpu_seconds(services) - before[0]) / thousands
                    result["db_cpu_per_1k"] = (cpu_seconds(database) - before[1]) / thousands
                    rows[name].append(result)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
        import psycopg

        with psycopg.connect(url) as connection:
            audits = connection.execute("SELECT count(*) FROM audit").fetchone()[0]
            version = connection.execute("SHOW server_version").fetchone()[0]
    keys = ("rps", "p50_ms", "p99_ms", "service_cpu_per_1k", "db_cpu_per_1k")
    summary = {name: {key: statistics.median(r[key] for r in results) for key in keys}
               | {"errors": sum(r["errors"] for r in results)} for name, results in rows.items()}
    load_average = os.getloadavg()
    print(f"{args.clients} client processes, {args.rounds} interleaved rounds of {args.seconds:.0f} s per set-up "
          f"(medians), 1 {args.worker_class} worker per instance, {os.cpu_count()} CPU(s), load average at the end "
          f"{load_average[0]:.1f}; PostgreSQL {version.split()[0]} with fsync on")
    print(f"{'set-up':<26}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'svc CPU s/1k':>14}{'db CPU s/1k':>13}")
    for name, result in summary.items():
        print(f"{name:<26}{result['rps']:>8.0f}{result['p50_ms']:>9.1f}{result['p99_ms']:>9.1f}{result['errors']:>8.0f}"
              f"{result['service_cpu_per_1k']:>14.2f}{result['db_cpu_per_1k']:>13.2f}")
    one, two, sqlite = (summary[n]["rps"] for n in ("1 instance, PostgreSQL", "2 instances, PostgreSQL",
                                                     "1 instance, SQLite"))
    print(f"two instances / one (PostgreSQL): {two / one:.2f}x; one on PostgreSQL / one on SQLite: {one / sqlite:.2f}x")
    if "1 instance, PG, C wait" in summary:
        c_wait = summary["1 instance, PG, C wait"]["rps"]
        print(f"one on PostgreSQL, C wait / one on SQLite: {c_wait / sqlite:.2f}x; cooperative / C wait: {one / c_wait:.2f}x")
    print(f"audit rows in PostgreSQL after the run: {audits}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
