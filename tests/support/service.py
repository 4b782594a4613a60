"""Waiting for an ``epidose serve`` process started by a test to answer on loopback."""

from __future__ import annotations

import subprocess
import time

import requests


def wait_until_healthy(process: subprocess.Popen[bytes], base: str, *, timeout_s: float = 60.0) -> None:
    """Poll ``base/healthz`` until it answers 200; raise with the server's stderr if it exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if requests.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError("epidose serve did not start: " + stderr)
        time.sleep(0.2)
