"""A real FHIR R4 server (SEKMET, on SQLite) started on 127.0.0.1 for integration tests.

scripts/install.sh puts it in ``.venv-fhir`` (it pins its own FastAPI and pydantic). Tests that
need it use the ``fhir_server`` fixture; it is skipped with a clear message when the server is not
installed, except under CI, where a missing server is a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
SEKMET = ROOT / ".venv-fhir" / "bin" / "sekmet"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_fhir_server(data_dir: Path, *, port: int | None = None) -> Iterator[str]:
    """Start SEKMET on loopback with a fresh data folder; yield its base URL; stop it after."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "sekmet.yaml"
    config.write_text(
        f"base_url: {base}\n"
        "host: 127.0.0.1\n"
        f"port: {port}\n"
        f"data_dir: {data_dir / 'db'}\n"
        "simulator: {enabled: false}\n"
        "validation: {inbound: strict}\n"
        "log_inbound: false\n",
        encoding="utf-8",
    )
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen([str(SEKMET), "serve", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"FHIR server exited early; see {data_dir / 'server.log'}")
            try:
                if requests.get(f"{base}/metadata", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("FHIR server did not become ready in 30 s")
            time.sleep(0.2)
        yield base
    finally:
        stop_process(process)
        log.close()


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Terminate a server process, killing it if it does not stop within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def sekmet_available() -> bool:
    return SEKMET.exists() and os.access(SEKMET, os.X_OK)
