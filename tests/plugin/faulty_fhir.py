"""A FHIR server on 127.0.0.1 that answers what a real one never would, for the faults the service must survive.

Each request's path goes to ``answer(path) -> Answer``; an answer may trickle its body a few bytes at a
time. The real SEKMET server is used wherever a real answer will do; this stands in only for broken ones
(a Bundle whose ``entry`` is not a list, a redirect to another origin, a 30 MB answer, a dripping socket).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    trickle_seconds: float = 0.0  # pause between single bytes (0: send at once)
    declare_length: bool = True


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up early (the service giving up at its budget) is expected here."""


@dataclass
class Seen:
    paths: list[str] = field(default_factory=list)
    open_streams: int = 0


@contextmanager
def faulty_fhir_server(answer: Callable[[str], Answer]) -> Iterator[tuple[str, Seen]]:
    """Yield (base URL, record of requests)."""
    seen = Seen()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.paths.append(self.path)
            reply = answer(self.path)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.headers.pop("Content-Type", "application/fhir+json"))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.declare_length:
                self.send_header("Content-Length", str(len(reply.body)))
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            with lock:
                seen.open_streams += 1
            try:
                with suppress(BrokenPipeError, ConnectionResetError):
                    if reply.trickle_seconds:
                        for index in range(len(reply.body)):
                            self.wfile.write(reply.body[index:index + 1])
                            self.wfile.flush()
                            time.sleep(reply.trickle_seconds)
                    else:
                        self.wfile.write(reply.body)
            finally:
                with lock:
                    seen.open_streams -= 1
            if not reply.declare_length:
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            return

    server = _QuietServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir", seen
    finally:
        server.shutdown()
        server.server_close()
