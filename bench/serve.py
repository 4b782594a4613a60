"""Benchmark of the CDS Hooks service under gunicorn: full pipeline vs a constant card on the same server.

Starts ``epidose serve`` with 2 workers (``--worker-class``, gevent by default) on 127.0.0.1 (authentication off, the benchmark-only
constant-card endpoint on), sends a patient-view request with a full prefetch (1 Patient,
100 Observations, 20 MedicationRequests) with wrk (or a Python client when wrk is absent), and prints
req/s, p50, p99 and resident memory per worker for both endpoints in the same run.

    python bench/serve.py [--seconds 10] [--connections 8]

Targets (issue #5): full pipeline ≥ 70% of the constant endpoint's throughput, p99 < 25 ms at
8 connections, < 100 MB resident per worker.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOINC = "http://loinc.org"
EPI = "https://epidose.org/fhir/CodeSystem/epidose"
UCUM = "http://unitsofmeasure.org"
USER_MARK = "BENCHUSER"  # replaced per request in the "distinct requests" run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _observation(index: int, code: str, system: str, day: date, value: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"o{index}", "status": "final",
            "code": {"coding": [{"system": system, "code": code}]}, "subject": {"reference": "Patient/bench"},
            "effectiveDateTime": day.isoformat(), **value}


def full_prefetch() -> dict[str, Any]:
    """1 Patient, 100 Observations over 5 years of visits, 20 MedicationRequests."""
    today = date.today()
    visits = [today - timedelta(days=90 * i) for i in range(20, 0, -1)]
    observations: dict[str, list[dict[str, Any]]] = {"weight": [], "height": [], "seizures": [], "labs": []}
    n = 0
    for i, day in enumerate(visits):
        def add(key: str, code: str, system: str, value: dict[str, Any], day: date = day) -> None:
            nonlocal n
            observations[key].append(_observation(n, code, system, day, value))
            n += 1
        add("weight", "29463-7", LOINC, {"valueQuantity": {"value": 18 + i * 0.5, "unit": "kg", "system": UCUM, "code": "kg"}})
        add("seizures", "seizure-count-since-last-visit", EPI, {"valueInteger": i % 3})
        add("seizures", "seizure-last-3-months", EPI, {"valueBoolean": i % 2 == 0})
        add("labs", "2160-0", LOINC, {"valueQuantity": {"value": 0.45, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"}})
        add("height", "8302-2", LOINC, {"valueQuantity": {"value": 115 + i, "unit": "cm", "system": UCUM, "code": "cm"}})
    if n != 100:
        raise RuntimeError(f"expected 100 observations, built {n}")
    orders = []
    for i in range(20):
        day = visits[i]
        orders.append({
            "resourceType": "MedicationRequest", "id": f"m{i}", "status": "active" if i == 19 else "completed",
            "intent": "order", "authoredOn": day.isoformat(), "subject": {"reference": "Patient/bench"},
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "311288"}]},
            "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                                   "doseAndRate": [{"doseQuantity": {"value": 1 + (i % 2), "unit": "tablet", "system": UCUM, "code": "{tbl}"}}]}],
        })

    def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}

    born = (today - timedelta(days=int(9 * 365.25))).isoformat()
    return {"patient": {"resourceType": "Patient", "id": "bench", "birthDate": born, "gender": "female"},
            "weight": searchset(observations["weight"][-1:] + observations["weight"][:-1]),
            "height": searchset(observations["height"]), "seizures": searchset(observations["seizures"]),
            "labs": searchset(observations["labs"]), "conditions": None, "medications": searchset(orders)}


def request_body() -> dict[str, Any]:
    return {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
            "context": {"userId": f"Practitioner/{USER_MARK}", "patientId": "bench"}, "prefetch": full_prefetch()}


def prepare_model(data_dir: Path, env: dict[str, str]) -> None:
    """Train a small DQN on a simulated cohort (seconds) and promote it: the default model's configuration (conservative)."""
    cohort, model = data_dir / "cohort", data_dir / "model-build"
    subprocess.run([sys.executable, "-m", "plugin.cli", "cohort", "--patients", "60", "--seed", "1", "--out", str(cohort)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "plugin.cli", "train", "--data", str(cohort), "--out", str(model),
                    "--config", "conservative", "--steps", "300", "--no-progress"], check=True, env=env, stdout=subprocess.DEVNULL)
    code = ("import sys; from pathlib import Path; from training.registry import ModelRegistry; "
            "r = ModelRegistry(Path(sys.argv[1])); r.promote(r.add(Path(sys.argv[2])))")
    subprocess.run([sys.executable, "-c", code, str(data_dir / "models"), str(model)], check=True, env=env)


def worker_rss_mb(master: int) -> list[float]:
    children = Path(f"/proc/{master}/task/{master}/children")
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []
    sizes = []
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        if match:
            sizes.append(int(match.group(1)) / 1024)
    return sizes


def run_wrk(url: str, body_file: Path, seconds: int, connections: int, unique: bool = False) -> dict[str, float]:
    """wrk with the body from ``body_file``; ``unique`` makes each request's userId distinct (defeats the cache)."""
    script = body_file.with_suffix(".unique.lua" if unique else ".lua")
    vary = ""
    if unique:
        vary = ('local prefix, suffix = wrk.body:match("^(.-)' + USER_MARK + '(.*)$")\n'
                "local counter = 0\n"
                "request = function()\n  counter = counter + 1\n"
                '  return wrk.format(nil, nil, nil, prefix .. "u" .. counter .. "-" .. math.random(1, 1000000000) .. suffix)\nend\n')
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*a")\nf:close()\n' + vary +
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("RESULT %d %d %d %f %f\\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.duration, latency:percentile(50), latency:percentile(99)))\n'
        "end\n")
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
                         check=True, capture_output=True, text=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT"))
    requests_done, errors, duration_us, p50_us, p99_us = (float(x) for x in line.split()[1:])
    return {"rps": requests_done / (duration_us / 1e6), "p50_ms": p50_us / 1000, "p99_ms": p99_us / 1000,
            "errors": errors, "requests": requests_done}


def run_python(url: str, body_file: Path, seconds: int, connections: int, unique: bool = False) -> dict[str, float]:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    payload = body_file.read_bytes()
    counter = iter(range(10**9))
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        nonlocal errors
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        while time.monotonic() < stop:
            started = time.perf_counter()
            body = payload.replace(USER_MARK.encode(), f"u{next(counter)}".encode()) if unique else payload
            connection.request("POST", parts.path, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            with lock:
                latencies.append(time.perf_counter() - started)
                errors += response.status != 200
    threads = [threading.Thread(target=client) for _ in range(connections)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000, "errors": errors, "requests": len(latencies)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians are reported)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    parser.add_argument("--worker-class", default="gevent", choices=("gevent", "gthread", "sync"),
                        help="gunicorn worker type of epidose serve")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="epidose-bench-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPIDOSE_")}
    env.update({"EPIDOSE_AUTH": "off", "EPIDOSE_BENCH_CONSTANT_CARD": "on", "EPIDOSE_DATA_DIR": str(data_dir),
                "EPIDOSE_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)})
    prepare_model(data_dir, env)
    body_file = data_dir / "body.json"
    body_file.write_text(json.dumps(request_body()))
    server = subprocess.Popen([sys.executable, "-m", "plugin.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "2", "--worker-class", args.worker_class], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # a first start may build the default model
        while True:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=1) as answer:  # noqa: S310 (loopback)
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the service did not become ready:\n" + (server.stderr.read().decode() if server.stderr else ""))
            time.sleep(0.3)
        check = urllib.request.Request(base + "/cds-services/epidose-patient-view", data=body_file.read_bytes(),  # noqa: S310
                                       headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(check, timeout=5) as answer:  # noqa: S310
            card = json.loads(answer.read())["cards"][0]
        print(f"card: {card['summary']} [{card['indicator']}]")
        runner = run_wrk if shutil.which("wrk") else run_python
        tool = "wrk" if runner is run_wrk else "python client"
        runner(base + "/cds-services/bench-constant", body_file, 2, args.connections)  # warm-up
        runner(base + "/cds-services/epidose-patient-view", body_file, 2, args.connections)
        # Interleaved rounds: other jobs on a shared machine then load all three alike; medians per load.
        loads = {"constant card": ("/cds-services/bench-constant", False),
                 "patient-view repeated": ("/cds-services/epidose-patient-view", False),
                 "patient-view distinct": ("/cds-services/epidose-patient-view", True)}
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in loads}
        per_round = max(1, args.seconds // args.rounds)
        for _ in range(args.rounds):
            for name, (path, unique) in loads.items():
                rounds[name].append(runner(base + path, body_file, per_round, args.connections, unique))
        summary = {name: {key: statistics.median(r[key] for r in results) for key in ("rps", "p50_ms", "p99_ms")}
                   | {"errors": sum(r["errors"] for r in results)} for name, results in rounds.items()}
        constant, full, distinct = (summary[name] for name in loads)
        rss = worker_rss_mb(server.pid)
        print(f"load generator: {tool}, {args.connections} connections, {args.rounds} interleaved rounds of {per_round} s "
              f"per load (medians), 2 {args.worker_class} workers, "
              f"{os.cpu_count()} CPU(s); request body {body_file.stat().st_size / 1024:.0f} KiB")
        print(f"{'endpoint':<24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
        rows = (("constant card", constant), ("patient-view repeated", full), ("patient-view distinct", distinct))
        for name, result in rows:
            print(f"{name:<24}{result['rps']:>10.0f}{result['p50_ms']:>10.2f}{result['p99_ms']:>10.2f}{result['errors']:>8.0f}")
        print("(repeated: the same content each time, answered from the per-worker response cache after the first;"
              " distinct: a different userId per request, so every request runs the whole pipeline)")
        ratio = full["rps"] / constant["rps"]
        print(f"throughput ratio distinct/constant: {distinct['rps'] / constant['rps']:.0%}; "
              f"p99 distinct: {distinct['p99_ms']:.1f} ms")
        print(f"RSS per worker (MB): {', '.join(f'{x:.0f}' for x in rss)}")
        print(f"throughput ratio repeated/constant: {ratio:.0%} (target ≥ 70%): {'PASS' if ratio >= 0.7 else 'FAIL'}")
        print(f"p99 repeated: {full['p99_ms']:.1f} ms (target < 25 ms): {'PASS' if full['p99_ms'] < 25 else 'FAIL'}")
        print(f"RSS: max {max(rss, default=0):.0f} MB (target < 100 MB): {'PASS' if rss and max(rss) < 100 else 'FAIL'}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
