"""Benchmark of the CDS Hooks service under gunicorn: full pipeline vs a constant card, and a peer.

Starts ``epidose serve`` with 2 workers (``--worker-class``, gevent by default) on 127.0.0.1
(authentication off, the benchmark-only constant-card endpoint on) and, when its environment is
there (``.venv-healthchain``), a minimal HealthChain constant-card service under uvicorn with 2
workers (``bench/healthchain_peer.py``). Loads, interleaved round by round, with wrk:

* epidose constant card, the bodies of the distinct load (parsing and a constant answer);
* patient-view, repeated: one full prefetch (1 Patient, 100 Observations, 20 MedicationRequests),
  answered from the per-worker response cache after the first call;
* patient-view, distinct children: prefetches built from a simulated cohort and the clinical charts
  (``bench/bodies.py``, every body different, checked), each request also with its own
  hookInstance and user, so no two requests are the same, none is answered from the response cache
  (whose key leaves out the hookInstance) and every one runs the whole pipeline;
* HealthChain constant card, the same bodies as the distinct load.

Prints req/s, p50, p99 and resident memory per worker for each.

    python bench/serve.py [--seconds 10] [--connections 8] [--children 300]

Targets: distinct ≥ 70% of epidose's constant card and ≥ 100% of HealthChain's constant card,
p99 < 25 ms at 8 connections, < 100 MB resident per worker.
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
import time
import urllib.error
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
    code = ("import sys; from pathlib import Path; from training.artifact.registry import ModelRegistry; "
            "r = ModelRegistry(Path(sys.argv[1])); r.promote(r.add(Path(sys.argv[2])))")
    subprocess.run([sys.executable, "-c", code, str(data_dir / "models"), str(model)], check=True, env=env)


def workers_cpu_seconds(master: int) -> float:
    """User + system CPU time of the master's child processes (the workers) so far."""
    children = Path(f"/proc/{master}/task/{master}/children")
    total = 0
    for pid in children.read_text().split() if children.exists() else []:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


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
        f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*a")\nf:close()\n' + vary
        + WRK_REPORT)
    return _run_wrk(script, url, seconds, connections)


# wrk's closing callback: one machine-readable line with requests, errors, duration and latency percentiles.
WRK_REPORT = (
    "done = function(summary, latency, requests)\n"
    '  io.write(string.format("RESULT %d %d %d %f %f\\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.duration, latency:percentile(50), latency:percentile(99)))\n'
    "end\n")


def _run_wrk(script: Path, url: str, seconds: int, connections: int) -> dict[str, float]:
    """Run wrk with a Lua script ending in :data:`WRK_REPORT`; requests/s, p50, p99, errors."""
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
                         check=True, capture_output=True, text=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT"))
    requests_done, errors, duration_us, p50_us, p99_us = (float(x) for x in line.split()[1:])
    return {"rps": requests_done / (duration_us / 1e6), "p50_ms": p50_us / 1000, "p99_ms": p99_us / 1000,
            "errors": errors, "requests": requests_done}


HOOK_MARK = "BENCHHOOK"  # replaced per request in the "distinct children" load
# Also replaced per request in that load: the user, part of the response cache's content key (the
# hookInstance is not), so no request repeats another's key even when wrk comes back to a body.
CALLER_MARK = "BENCHCALLER"


def write_children(path: Path, n_children: int) -> int:
    """One distinct body per line (charts and simulated children), the hookInstance and user placeholders."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bodies import benchmark_requests, distinct_bodies

    requests = [r for r in benchmark_requests(n_children) if r["hook"] == "patient-view"]
    for index, request in enumerate(requests):
        request["hookInstance"] = f"{HOOK_MARK}-{index}"
        request["context"]["userId"] = f"Practitioner/{CALLER_MARK}"
    bodies = distinct_bodies(requests)  # raises on a repeat
    path.write_bytes(b"\n".join(bodies) + b"\n")
    return len(bodies)


def run_wrk_children(url: str, bodies_file: Path, seconds: int, connections: int) -> dict[str, float]:
    """wrk cycling through the bodies of ``bodies_file``, each request's hookInstance and user made unique
    (so none is answered from the per-worker response cache: every request runs the whole pipeline)."""
    script = bodies_file.with_suffix(".lua")
    script.write_text(
        'local bodies = {}\n'
        f'for line in io.lines("{bodies_file}") do if #line > 0 then bodies[#bodies + 1] = line end end\n'
        'local threads = 0\nfunction setup(thread) threads = threads + 1; thread:set("tid", threads) end\n'
        'local counter = 0\n'
        'function request()\n  counter = counter + 1\n'
        '  local body = bodies[(counter + (tid or 0) * 7919) % #bodies + 1]\n'
        f'  body = body:gsub("{HOOK_MARK}", "t" .. (tid or 0) .. "-" .. counter, 1)\n'
        f'  body = body:gsub("{CALLER_MARK}", "u" .. (tid or 0) .. "-" .. counter, 1)\n'
        '  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)\nend\n'
        + WRK_REPORT)
    return _run_wrk(script, url, seconds, connections)


def wait_ready(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 600  # a first start may build the default model
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback)
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not become ready:\n" + (process.stderr.read().decode() if process.stderr else ""))
        time.sleep(0.3)


def post_all(url: str, bodies_file: Path, limit: int | None = None) -> int:
    """POST each body (hookInstance filled); raises unless every answer is 200 with a cards list. Returns the count."""
    lines = [line for line in bodies_file.read_bytes().splitlines() if line][:limit]
    for index, body in enumerate(lines):
        body = body.replace(HOOK_MARK.encode(), f"check-{index}".encode(), 1).replace(CALLER_MARK.encode(), b"checker", 1)
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            if answer.status != 200 or not isinstance(json.loads(answer.read()).get("cards"), list):
                raise SystemExit(f"{url}: body {index} answered {answer.status}")
    return len(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per load, split over the rounds")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians are reported)")
    parser.add_argument("--children", type=int, default=300, help="simulated children of the distinct load")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    parser.add_argument("--worker-class", default="gevent", choices=("gevent", "gthread", "sync"),
                        help="gunicorn worker type of epidose serve")
    parser.add_argument("--healthchain", type=Path, default=ROOT / ".venv-healthchain",
                        help="HealthChain's virtual environment (the peer is skipped when it is absent)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed on PATH: scripts/install.sh dev installs it (apt, as root), or apt-get install -y wrk")
    data_dir = Path(tempfile.mkdtemp(prefix="epidose-bench-"))
    port, peer_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPIDOSE_")}
    env.update({"EPIDOSE_AUTH": "off", "EPIDOSE_BENCH_CONSTANT_CARD": "on", "EPIDOSE_DATA_DIR": str(data_dir),
                "EPIDOSE_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)})
    prepare_model(data_dir, env)
    body_file = data_dir / "body.json"
    body_file.write_text(json.dumps(request_body()))
    children_file = data_dir / "children.ndjson"
    n_bodies = write_children(children_file, args.children)
    processes: list[subprocess.Popen[bytes]] = []
    server = subprocess.Popen([sys.executable, "-m", "plugin.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "2", "--worker-class", args.worker_class], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    processes.append(server)
    peer_python = args.healthchain / "bin" / "python"
    peer = None
    if peer_python.exists():
        peer_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
        peer = subprocess.Popen([str(peer_python), str(ROOT / "bench" / "healthchain_peer.py"), "--port", str(peer_port),
                                 "--workers", "2"], env=peer_env, cwd=ROOT / "bench",
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        processes.append(peer)
    base = f"http://127.0.0.1:{port}"
    peer_url = f"http://127.0.0.1:{peer_port}/cds/cds-services/bench-constant"
    try:
        wait_ready(base + "/readyz", server, "epidose serve")
        check = urllib.request.Request(base + "/cds-services/epidose-patient-view", data=body_file.read_bytes(),  # noqa: S310
                                       headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(check, timeout=5) as answer:  # noqa: S310
            card = json.loads(answer.read())["cards"][0]
        print(f"card: {card['summary']} [{card['indicator']}]")
        answered = post_all(base + "/cds-services/epidose-patient-view", children_file)
        print(f"distinct load: {n_bodies} different patient-view bodies (all answered 200 with cards: {answered})")
        loads: dict[str, tuple[str, str]] = {
            "epidose constant card": (base + "/cds-services/bench-constant", "children"),
            "epidose patient-view repeated": (base + "/cds-services/epidose-patient-view", "repeated"),
            "epidose patient-view distinct children": (base + "/cds-services/epidose-patient-view", "children"),
        }
        if peer is not None:
            wait_ready(peer_url.rsplit("/cds/", 1)[0] + "/health", peer, "the HealthChain peer")
            post_all(peer_url, children_file, limit=20)
            loads["HealthChain constant card"] = (peer_url, "children")

        def run(url: str, kind: str, seconds: int) -> dict[str, float]:
            master = peer.pid if peer is not None and url == peer_url else server.pid
            cpu = workers_cpu_seconds(master)
            if kind == "children":
                result = run_wrk_children(url, children_file, seconds, args.connections)
            else:
                result = run_wrk(url, body_file, seconds, args.connections)
            # The serving processes' own CPU per answered request (wrk's and other jobs' excluded).
            result["server_cpu_ms"] = (workers_cpu_seconds(master) - cpu) / max(result["requests"], 1) * 1e3
            return result

        load_before = os.getloadavg()
        for url, kind in loads.values():  # warm-up
            run(url, kind, 2)
        # Interleaved rounds: other jobs on a shared machine then load every service alike; medians per load.
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in loads}
        per_round = max(1, args.seconds // args.rounds)
        for _ in range(args.rounds):
            for name, (url, kind) in loads.items():
                rounds[name].append(run(url, kind, per_round))
        summary = {name: {key: statistics.median(r[key] for r in results) for key in ("rps", "p50_ms", "p99_ms", "server_cpu_ms")}
                   | {"errors": sum(r["errors"] for r in results)} for name, results in rounds.items()}
        rss = {"epidose": worker_rss_mb(server.pid), "HealthChain": worker_rss_mb(peer.pid) if peer else []}
        print(f"load generator: wrk, {args.connections} connections, {args.rounds} interleaved rounds of {per_round} s "
              f"per load (medians), 2 workers each (epidose: {args.worker_class}), {os.cpu_count()} CPU(s); "
              f"repeated body {body_file.stat().st_size / 1024:.0f} KiB, distinct bodies "
              f"{children_file.stat().st_size / 1024 / n_bodies:.0f} KiB on average")
        load_after = os.getloadavg()
        print(f"machine load average (1/5/15 min) before the rounds {' / '.join(f'{x:.1f}' for x in load_before)}, "
              f"after {' / '.join(f'{x:.1f}' for x in load_after)} ({time.strftime('%H:%M UTC', time.gmtime())})")
        print("| load | req/s | p50 ms | p99 ms | workers' CPU ms/request | errors | worker RSS MB |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for name, result in summary.items():
            sizes = rss["HealthChain" if name.startswith("HealthChain") else "epidose"]
            print(f"| {name} | {result['rps']:.0f} | {result['p50_ms']:.2f} | {result['p99_ms']:.2f} | "
                  f"{result['server_cpu_ms']:.2f} | {result['errors']:.0f} | {', '.join(f'{x:.0f}' for x in sizes)} |")
        distinct = summary["epidose patient-view distinct children"]
        ratio = distinct["rps"] / summary["epidose constant card"]["rps"]
        print(f"distinct / epidose constant: {ratio:.2f} (target ≥ 0.70): {'PASS' if ratio >= 0.7 else 'FAIL'}")
        if "HealthChain constant card" in summary:
            peer_ratio = distinct["rps"] / summary["HealthChain constant card"]["rps"]
            print(f"distinct / HealthChain constant: {peer_ratio:.2f} (target ≥ 1.0): {'PASS' if peer_ratio >= 1.0 else 'FAIL'}")
        print(f"p99 distinct: {distinct['p99_ms']:.1f} ms (target < 25 ms): {'PASS' if distinct['p99_ms'] < 25 else 'FAIL'}")
        largest = max(rss["epidose"], default=0)
        print(f"epidose RSS: max {largest:.0f} MB (target < 100 MB): {'PASS' if rss['epidose'] and largest < 100 else 'FAIL'}")
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
