"""A tiny recording reverse proxy on 127.0.0.1: records each request's path and Authorization header.

It proves what the service sends to the EHR's FHIR server (the bearer token) without trusting the
server's own logs; upstream URLs in responses are rewritten to the proxy so paging stays on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


@dataclass
class Recording:
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)
    delay_seconds: float = 0.0


@contextmanager
def recording_proxy(upstream: str) -> Iterator[tuple[str, Recording]]:
    """Yield (proxy base URL mirroring ``upstream``, recording)."""
    recording = Recording()
    prefix = "/" + upstream.split("/", 3)[3] if upstream.count("/") >= 3 else ""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            recording.requests.append((self.path, self.headers.get("Authorization")))
            if recording.delay_seconds:
                time.sleep(recording.delay_seconds)
            target = upstream + self.path[len(prefix):] if self.path.startswith(prefix) else upstream + self.path
            try:
                answer = requests.get(target, headers={"Accept": "application/fhir+json"}, timeout=10)
            except requests.RequestException:
                self.send_response(502)
                self.end_headers()
                return
            body = answer.content.replace(upstream.encode(), proxy_base.encode())
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    proxy_base = f"http://127.0.0.1:{server.server_address[1]}{prefix}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy_base, recording
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
