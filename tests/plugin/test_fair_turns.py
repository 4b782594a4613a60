"""Under ``epidose serve`` (gevent), one client's back-to-back requests cannot hold the worker from the others."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from tests.plugin.test_serve import serving

pytestmark = pytest.mark.slow

PIPELINED = 400  # requests one greedy client sends in one write


def _read_responses(sock: socket.socket, count: int, arrivals: list[float]) -> None:
    """Read ``count`` HTTP responses (each ends with its Content-Length body), noting when each completes."""
    buffer = b""
    while len(arrivals) < count:
        chunk = sock.recv(65536)
        if not chunk:
            return
        buffer += chunk
        while True:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = buffer[:head_end].decode("latin-1").lower()
            length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
            if len(buffer) < head_end + 4 + length:
                break
            buffer = buffer[head_end + 4 + length:]
            arrivals.append(time.monotonic())


def test_a_pipelining_client_does_not_hold_the_worker(tmp_path: Path) -> None:
    """One worker: 400 pipelined health checks on one connection, then one on another.

    Without a turn after each answer, the worker answers all 400 before it even accepts the second
    connection; with turns, the second is answered while most of the first client's are still to come.
    """
    env = {"EPIDOSE_DATA_DIR": str(tmp_path / "data"), "EPIDOSE_BUILD_DEFAULT_MODEL": "off", "EPIDOSE_AUTH": "off"}
    with serving(env) as base:
        host, port = base.removeprefix("http://").split(":")
        request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        greedy = socket.create_connection((host, int(port)), timeout=30)
        other = socket.create_connection((host, int(port)), timeout=30)
        try:
            greedy_arrivals: list[float] = []
            reader = threading.Thread(target=_read_responses, args=(greedy, PIPELINED, greedy_arrivals))
            reader.start()
            greedy.sendall(request * PIPELINED)
            while not greedy_arrivals:  # the worker is now working through the pipelined requests
                time.sleep(0.0005)
            other.sendall(request)
            other_arrival: list[float] = []
            _read_responses(other, 1, other_arrival)
            reader.join(timeout=60)
            assert len(greedy_arrivals) == PIPELINED and other_arrival
            before = sum(arrival < other_arrival[0] for arrival in greedy_arrivals)
            assert before < PIPELINED // 2, f"the other client waited for {before} of the greedy client's {PIPELINED} answers"
        finally:
            greedy.close()
            other.close()
