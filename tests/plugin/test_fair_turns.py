"""Under ``epidose serve`` (gevent), clients sending requests back to back cannot hold the worker from the others."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from tests.plugin.test_serve import serving

pytestmark = pytest.mark.slow

PIPELINED = 300  # requests each greedy client sends in one write
# Answers to the greedy clients the other may wait behind: a turn each per look for waiting sockets.
# gevent.sleep(0) gives about 50 (its callbacks run before it looks again); no yield at all, all 600.
FAIR_WAIT_ANSWERS = 20


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


def test_back_to_back_clients_do_not_hold_the_worker(tmp_path: Path) -> None:
    """One worker; two clients with 300 pipelined health checks each, then one more client with one.

    The third is answered within a few of the others' answers, not after 50 (a callback-queue yield)
    or all 600 (no yield).
    """
    env = {"EPIDOSE_DATA_DIR": str(tmp_path / "data"), "EPIDOSE_BUILD_DEFAULT_MODEL": "off", "EPIDOSE_AUTH": "off"}
    with serving(env) as base:
        host, port = base.removeprefix("http://").split(":")
        request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        greedy = [socket.create_connection((host, int(port)), timeout=30) for _ in range(2)]
        other = socket.create_connection((host, int(port)), timeout=30)
        try:
            arrivals: list[list[float]] = [[], []]
            readers = [threading.Thread(target=_read_responses, args=(sock, PIPELINED, seen))
                       for sock, seen in zip(greedy, arrivals, strict=True)]
            for reader in readers:
                reader.start()
            for sock in greedy:
                sock.sendall(request * PIPELINED)
            while not all(arrivals):  # the worker is now working through both clients' requests
                time.sleep(0.0005)
            sent = time.monotonic()
            other.sendall(request)
            other_arrival: list[float] = []
            _read_responses(other, 1, other_arrival)
            for reader in readers:
                reader.join(timeout=60)
            assert [len(seen) for seen in arrivals] == [PIPELINED, PIPELINED] and other_arrival
            waited = sum(sent < arrival < other_arrival[0] for seen in arrivals for arrival in seen)
            assert waited < FAIR_WAIT_ANSWERS, f"the third client waited for {waited} of the others' answers"
        finally:
            for sock in (*greedy, other):
                sock.close()
