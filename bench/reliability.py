"""Reliability benchmark: fuzz answers, slow clients, fetch threads under a dripping FHIR server, worker memory.

    python bench/reliability.py [--fuzz-examples 10000] [--rounds 5] [--seconds 3] [--parts fuzz,slow,...]

1. Fuzz: runs tests/plugin/test_fuzz.py (Hypothesis, every endpoint) and prints its answers by status.
2. Slow clients: starts ``epidose serve`` three times on 127.0.0.1 (2 workers each: sync, as before,
   gthread and gevent, the default now), opens 50 connections that send one header line every 2 s and
   50 that send a declared 100 kB body 10 bytes every 2 s, then times ``/healthz`` and a full
   patient-view call on each server while they drip (timeouts counted, 5 s each).
3. Throughput: ``bench/serve.py``'s patient-view load (distinct requests, whole pipeline) against the
   three servers, interleaved in rounds on the same machine; medians and the ratio to sync.
4. Trickle: 20 hook calls' worth of FHIR fetches (4 keys each) against a server sending one byte every
   50 ms; prints the process's thread count before, right after and 1 s after.
5. Memory: worker RSS before and after 10 calls whose absent prefetch keys the FHIR server answers with
   30 MB Bundles, with the default size cap and with the cap raised out of the way.
"""

from __future__ import annotations

import argparse
import json
import os
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
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serve import free_port, prepare_model, request_body, run_python, worker_rss_mb  # noqa: E402

SLOW_HEADER_CONNECTIONS = 50
SLOW_BODY_CONNECTIONS = 50
DRIP_SECONDS = 2.0
PROBE_TIMEOUT_SECONDS = 5.0
PROBES = 5


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPIDOSE_")}
    env.update({"EPIDOSE_AUTH": "off", "EPIDOSE_DATA_DIR": str(data_dir), "EPIDOSE_LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(ROOT), "EPIDOSE_BUILD_DEFAULT_MODEL": "off", **extra})
    return env


@contextmanager
def serving(env: dict[str, str], worker_class: str, workers: int = 2) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "plugin.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", str(workers), "--worker-class", worker_class],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with suppress(OSError), urllib.request.urlopen(base + "/readyz", timeout=1) as answer:  # noqa: S310
                if answer.status == 200:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the {worker_class} service did not become ready")
            time.sleep(0.3)
        yield base, server
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


# -- 1. fuzz ---------------------------------------------------------------------------------------

def fuzz(examples: int) -> None:
    env = {**os.environ, "EPIDOSE_FUZZ_EXAMPLES": str(examples), "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                          "tests/plugin/test_fuzz.py"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    line = next((x for x in out.stdout.splitlines() if "fuzz answers by status" in x), None)
    verdict = "passed" if out.returncode == 0 else "FAILED"
    print(f"fuzz: {examples} generated requests, {verdict} in {time.monotonic() - started:.0f} s")
    print(f"  {line.split('fuzz answers by status:')[1].strip() if line else out.stdout[-2000:]}")


# -- 2. slow clients -------------------------------------------------------------------------------

class Drippers:
    """Connections that never finish their request: header lines or body bytes every DRIP_SECONDS."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.sockets: list[tuple[socket.socket, bytes]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drip, daemon=True)

    def __enter__(self) -> Drippers:
        for index in range(SLOW_HEADER_CONNECTIONS + SLOW_BODY_CONNECTIONS):
            sock = socket.create_connection(self.address, timeout=5)
            if index < SLOW_HEADER_CONNECTIONS:
                sock.sendall(b"POST /cds-services/epidose-patient-view HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                self.sockets.append((sock, b"X-Slow: a\r\n"))
            else:
                sock.sendall(b"POST /cds-services/epidose-patient-view HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
                self.sockets.append((sock, b"          "))
        self.thread.start()
        time.sleep(DRIP_SECONDS + 0.5)  # every connection has dripped at least once
        return self

    def _drip(self) -> None:
        while not self.stop.wait(DRIP_SECONDS):
            for sock, piece in self.sockets:
                with suppress(OSError):
                    sock.sendall(piece)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        for sock, _ in self.sockets:
            sock.close()


def timed(url: str, body: bytes | None) -> float | None:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_SECONDS) as answer:  # noqa: S310
            answer.read()
            if answer.status != 200:
                return None
    except OSError:
        return None
    return time.perf_counter() - started


def describe(latencies: list[float | None]) -> str:
    done = [x for x in latencies if x is not None]
    failed = len(latencies) - len(done)
    if not done:
        return f"all {failed} timed out (> {PROBE_TIMEOUT_SECONDS:.0f} s)"
    text = f"median {statistics.median(done) * 1000:.0f} ms, max {max(done) * 1000:.0f} ms"
    return text + (f", {failed} timed out" if failed else "")


def slow_clients(servers: dict[str, str], body: bytes) -> None:
    print(f"slow clients: {SLOW_HEADER_CONNECTIONS} slow-header + {SLOW_BODY_CONNECTIONS} slow-body connections "
          f"dripping every {DRIP_SECONDS:.0f} s; {PROBES} probes each, {PROBE_TIMEOUT_SECONDS:.0f} s timeout")
    for name, base in servers.items():
        with Drippers(base):
            health = [timed(base + "/healthz", None) for _ in range(PROBES)]
            hook = [timed(base + "/cds-services/epidose-patient-view", body) for _ in range(PROBES)]
        print(f"  {name:<8} /healthz: {describe(health)}; patient-view: {describe(hook)}")


# -- 3. throughput ---------------------------------------------------------------------------------

def throughput(servers: dict[str, str], body_file: Path, rounds: int, seconds: int) -> None:
    results: dict[str, list[float]] = {name: [] for name in servers}
    for _ in range(rounds):
        for name, base in servers.items():
            results[name].append(run_python(base + "/cds-services/epidose-patient-view", body_file, seconds, 8,
                                            unique=True)["rps"])
    sync = statistics.median(results["sync"])
    print(f"throughput (bench/serve.py patient-view distinct, python client, 8 connections, {rounds} interleaved "
          f"rounds of {seconds} s, medians):")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:<8} {median:7.0f} req/s  ({median / sync:.0%} of sync)  rounds: "
              + ", ".join(f"{v:.0f}" for v in values))


# -- 4. trickle ------------------------------------------------------------------------------------

def trickle() -> None:
    from plugin.gather import MAX_FETCH_THREADS, FhirFetcher
    from tests.plugin.faulty_fhir import Answer, faulty_fhir_server

    body = json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []}).encode() + b" " * 2000
    templates = {f"k{i}": f"Observation?patient={{{{context.patientId}}}}&k={i}" for i in range(4)}
    def fetch_threads() -> int:
        return sum(1 for thread in threading.enumerate() if thread.name.startswith("fhir-fetch"))

    before = threading.active_count()
    with faulty_fhir_server(lambda path: Answer(body=body, trickle_seconds=0.05)) as (base, seen):
        fetcher = FhirFetcher(timeout_seconds=0.15, budget_seconds=0.3)
        durations = []
        for _ in range(20):
            started = time.monotonic()
            fetcher.gather(templates, None, {"patientId": "p1"}, base, None)
            durations.append(time.monotonic() - started)
        right_after = fetch_threads()
        time.sleep(1.0)
        later, streams = fetch_threads(), seen.open_streams
    print(f"trickle: 20 calls x 4 keys to a server sending 1 byte / 50 ms (budget 0.3 s per call): call time "
          f"median {statistics.median(durations) * 1000:.0f} ms, max {max(durations) * 1000:.0f} ms; fetch threads "
          f"right after {right_after}, 1 s later {later} (a pool of at most {MAX_FETCH_THREADS}, reused); process threads before "
          f"{before}, after {threading.active_count()}; answers still being read 1 s later: {streams}")


# -- 5. memory -------------------------------------------------------------------------------------

def memory(data_dir: Path) -> None:
    from tests.plugin.faulty_fhir import Answer, faulty_fhir_server

    big = json.dumps({"resourceType": "Bundle", "type": "searchset",
                      "entry": [{"resource": {"resourceType": "Observation", "id": f"o{i}", "note": [{"text": "x" * 280}]}}
                                for i in range(90_000)]}).encode()
    prefetch = request_body()["prefetch"]
    for key in ("labs", "seizures"):
        del prefetch[key]
    print(f"memory: each call misses 2 prefetch keys; the FHIR server answers each with {len(big) / 2**20:.0f} MB "
          "(half with Content-Length, half streamed without); 1 gevent worker, FHIR budget 5 s")
    with faulty_fhir_server(lambda path: Answer(body=big, declare_length="2160-0" in path)) as (fhir, _):
        for label, cap in (("default cap (5 MB)", None), ("cap raised to 1 GB", str(2**30))):
            extra = {"EPIDOSE_FHIR_BUDGET_SECONDS": "5", "EPIDOSE_FHIR_TIMEOUT_SECONDS": "5"}
            if cap:
                extra["EPIDOSE_FHIR_MAX_RESPONSE_BYTES"] = cap
            with serving(base_env(data_dir, **extra), "gevent", workers=1) as (base, server):
                body = json.dumps({"hook": "patient-view", "hookInstance": "h", "fhirServer": fhir,
                                   "context": {"userId": "Practitioner/x", "patientId": "bench"},
                                   "prefetch": prefetch}).encode()
                timed(base + "/healthz", None)
                before = worker_rss_mb(server.pid)
                statuses = []
                for _ in range(10):
                    request = urllib.request.Request(base + "/cds-services/epidose-patient-view", data=body,  # noqa: S310
                                                     headers={"Content-Type": "application/json"})
                    try:
                        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                            statuses.append(answer.status)
                    except urllib.error.HTTPError as error:
                        statuses.append(error.code)
                after = worker_rss_mb(server.pid)
            print(f"  {label:<20} worker RSS {before[0]:.0f} MB -> {after[0]:.0f} MB "
                  f"(+{after[0] - before[0]:.0f} MB); answers {sorted(set(statuses))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzz-examples", type=int, default=10_000)
    parser.add_argument("--skip-fuzz", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3, help="seconds per throughput round and server")
    parser.add_argument("--parts", default="fuzz,trickle,slow,throughput,memory",
                        help="comma-separated parts to run (fuzz, trickle, slow, throughput, memory)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if args.skip_fuzz:
        parts.discard("fuzz")
    print(f"machine: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}")
    if "fuzz" in parts:
        fuzz(args.fuzz_examples)
    if "trickle" in parts:
        trickle()
    data_dir = Path(tempfile.mkdtemp(prefix="epidose-reliability-"))
    try:
        prepare_model(data_dir, base_env(data_dir))
        body_file = data_dir / "body.json"
        body_file.write_text(json.dumps(request_body()))
        with serving(base_env(data_dir), "sync") as (sync, _), serving(base_env(data_dir), "gthread") as (gthread, _), \
                serving(base_env(data_dir), "gevent") as (gevent, _):
            servers = {"sync": sync, "gthread": gthread, "gevent": gevent}
            for base in servers.values():  # warm every worker's caches
                for _ in range(4):
                    timed(base + "/cds-services/epidose-patient-view", body_file.read_bytes())
            if "slow" in parts:
                slow_clients(servers, body_file.read_bytes())
            if "throughput" in parts:
                throughput(servers, body_file, args.rounds, args.seconds)
        if "memory" in parts:
            memory(data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

