"""`epidose serve` as an operator starts and stops it: one notice per start, no shared control socket, a plain busy-port error."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import registry_with
from tests.deploy.test_quickstart import EPIDOSE, serving
from tests.support.fhir_server import free_port


@pytest.mark.slow
def test_notices_once_and_no_shared_control_socket(small_model: Path, tmp_path: Path) -> None:
    """Two workers, auth on without a trusted issuer: each notice is said once; no control socket is left open."""
    data = tmp_path / "data"
    registry_with(small_model, data)
    home = tmp_path / "home"
    home.mkdir()
    log = tmp_path / "serve.log"
    port = free_port()
    with serving(data, auth=True, port=port, log=log, env={"HOME": str(home)}, workers=2):
        time.sleep(1)  # both workers have logged their start
        assert not list(data.glob("*.ctl"))
    text = log.read_text(encoding="utf-8")
    assert text.count("EPIDOSE_PUBLIC_BASE_URL is not set") == 1, text
    assert text.count("EPIDOSE_JWKS trusts no issuer") == 1, text
    assert not (home / ".gunicorn").exists()  # not the host-wide default every instance would share


def test_a_busy_port_says_use_port(tmp_path: Path) -> None:
    """No gunicorn retries or raw errors: one line naming the address and --port, exit status 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "EPIDOSE_DATA_DIR": str(tmp_path), "EPIDOSE_BUILD_DEFAULT_MODEL": "off"}
        result = subprocess.run([str(EPIDOSE) if EPIDOSE.exists() else "epidose", "serve", "--port", str(port)],
                                env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in result.stderr and "use --port" in result.stderr
    assert "Traceback" not in result.stderr and "Connection in use" not in result.stderr


@pytest.mark.slow
def test_stop_is_prompt(small_model: Path, tmp_path: Path) -> None:
    """SIGTERM with no request in flight: the service is gone well within gunicorn's graceful timeout."""
    data = tmp_path / "data"
    registry_with(small_model, data)
    env = {**os.environ, "EPIDOSE_DATA_DIR": str(data), "EPIDOSE_AUTH": "off", "EPIDOSE_BUILD_DEFAULT_MODEL": "off"}
    port = free_port()
    process = subprocess.Popen([str(EPIDOSE) if EPIDOSE.exists() else "epidose", "serve", "--port", str(port),
                                "--workers", "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        time.sleep(2)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=8)  # gunicorn kills lingering workers only after its 10 s graceful timeout
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
