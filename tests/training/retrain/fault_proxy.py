"""A tiny HTTP proxy on 127.0.0.1 in front of the real FHIR server that injects faults on demand.

A real server cannot be told to answer 429 or a malformed page, so tests queue faults here:
each queued fault is applied to the next request whose path contains its ``match`` text; every other
request is forwarded unchanged (with the upstream base URL in bodies and headers rewritten to the
proxy's, so ``next`` links come back through the proxy). Optionally the proxy also plays a SMART
Backend Services authorization server and demands a bearer token on every FHIR request.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import requests


@dataclass
class Fault:
    """One injected failure: ``kind`` is status, malformed, not_bundle, short_page, hang or drop.

    ``match`` is looked for in ``"<METHOD> <path?query>"`` (e.g. ``"POST /fhir"`` for batches).
    """

    kind: str
    match: str = ""
    status: int = 500
    retry_after: str | None = None
    seconds: float = 0.0


@dataclass
class ProxyState:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    log: list[tuple[str, str, int]] = field(default_factory=list)
    smart_public_key: Any = None
    tokens: dict[str, float] = field(default_factory=dict)
    token_lifetime: int = 300
    token_requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    base: str = ""

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for index, fault in enumerate(self.faults):
                if fault.match in path:
                    return self.faults.pop(index)
        return None


def _handler(state: ProxyState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            state.log.append((self.command, self.path, status))

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if state.smart_public_key is not None and self._smart(body):
                return
            fault = state.take_fault(f"{self.command} {self.path}")
            if fault is not None and self._fault(fault):
                return
            upstream = state.upstream.rsplit("/fhir", 1)[0] + self.path
            headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "authorization", "content-length"}}
            response = requests.request(self.command, upstream, data=body or None, headers=headers, timeout=30)
            content = response.content.replace(state.upstream.encode(), state.base.encode())
            if fault is not None and fault.kind == "malformed":
                content = content[: max(1, len(content) // 2)]
            if fault is not None and fault.kind == "short_page":
                # A result shifted out of view, as when a resource is updated during offset paging.
                page = json.loads(content)
                page["entry"] = page.get("entry", [])[1:]
                content = json.dumps(page).encode()
            if fault is not None and fault.kind == "not_bundle":
                content = json.dumps({"resourceType": "Patient", "id": "x"}).encode()
            out_headers = {}
            for key in ("Content-Type", "Content-Location", "Retry-After", "X-Progress", "Location", "ETag"):
                if key in response.headers:
                    out_headers[key] = response.headers[key].replace(state.upstream, state.base)
            self._send(response.status_code, content, out_headers)

        def _fault(self, fault: Fault) -> bool:
            """Apply a fault; True when the response has been sent (or the connection dropped)."""
            if fault.kind == "status":
                headers = {"Content-Type": "application/fhir+json"}
                if fault.retry_after is not None:
                    headers["Retry-After"] = fault.retry_after
                outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient"}]}
                self._send(fault.status, json.dumps(outcome).encode(), headers)
                return True
            if fault.kind == "hang":
                time.sleep(fault.seconds)
                return False  # answers late, after the client has given up
            if fault.kind == "drop":
                state.log.append((self.command, self.path, 0))
                self.close_connection = True
                self.connection.close()
                return True
            return False

        def _smart(self, body: bytes) -> bool:
            """Play the authorization server; refuse FHIR requests without a valid token."""
            import jwt

            if self.path.endswith("/.well-known/smart-configuration"):
                config = {"token_endpoint": state.base.rsplit("/fhir", 1)[0] + "/auth/token"}
                self._send(200, json.dumps(config).encode(), {"Content-Type": "application/json"})
                return True
            if self.path == "/auth/token":
                state.token_requests += 1
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                try:
                    claims = jwt.decode(
                        form["client_assertion"],
                        state.smart_public_key,
                        algorithms=["RS384", "ES384"],
                        audience=state.base.rsplit("/fhir", 1)[0] + "/auth/token",
                        leeway=3600,  # tests move the client's clock forward to expire tokens
                    )
                    valid = form.get("grant_type") == "client_credentials" and claims["iss"] == claims["sub"]
                except (jwt.PyJWTError, KeyError):
                    valid = False
                if not valid:
                    self._send(400, b'{"error": "invalid_client"}', {"Content-Type": "application/json"})
                    return True
                token = uuid.uuid4().hex
                state.tokens[token] = time.time() + state.token_lifetime
                answer = {"access_token": token, "token_type": "bearer", "expires_in": state.token_lifetime}
                self._send(200, json.dumps(answer).encode(), {"Content-Type": "application/json"})
                return True
            header = self.headers.get("Authorization") or ""
            token = header.removeprefix("Bearer ")
            if state.tokens.get(token, 0) < time.time():
                self._send(401, b'{"resourceType": "OperationOutcome", "issue": []}', {"Content-Type": "application/fhir+json"})
                return True
            return False

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out closes its socket while a hung answer is still being written.
        pass


@contextmanager
def fault_proxy(upstream: str, *, smart_public_key: Any = None) -> Iterator[tuple[str, ProxyState]]:
    """Start the proxy for ``upstream`` (a FHIR base URL); yield (proxy base URL, state)."""
    state = ProxyState(upstream=upstream.rstrip("/"), smart_public_key=smart_public_key)
    server = _QuietServer(("127.0.0.1", 0), _handler(state))
    state.base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state.base, state
    finally:
        server.shutdown()
        server.server_close()
