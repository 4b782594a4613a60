"""Under ``epidose serve`` as shipped, clients that never finish their request do not starve the others."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import requests

from tests.plugin.test_serve import serving

pytestmark = pytest.mark.slow


def test_slow_header_and_body_clients_do_not_starve_health_checks(tmp_path: Path) -> None:
    """One worker, 20 connections stuck in their headers and 20 in their bodies: /healthz still answers.

    A sync worker would serve the first stuck connection until gunicorn's 30 s timeout and answer nobody.
    """
    env = {"EPIDOSE_DATA_DIR": str(tmp_path / "data"), "EPIDOSE_BUILD_DEFAULT_MODEL": "off", "EPIDOSE_AUTH": "off"}
    with serving(env) as base:
        host, port = base.removeprefix("http://").split(":")
        stuck = []
        try:
            for index in range(40):
                sock = socket.create_connection((host, int(port)), timeout=5)
                request = b"POST /cds-services/epidose-patient-view HTTP/1.1\r\nHost: x\r\n"
                if index % 2:
                    request += b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
                sock.sendall(request)
                stuck.append(sock)
            for _ in range(3):
                assert requests.get(base + "/healthz", timeout=5).status_code == 200
                assert requests.get(base + "/cds-services", timeout=5).status_code == 200
        finally:
            for sock in stuck:
                sock.close()
