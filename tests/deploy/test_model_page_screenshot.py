"""The model page as a clinician sees it: rendered by `epidose serve`, screenshotted by headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from plugin.cli import main
from tests.deploy.conftest import registry_with
from tests.deploy.test_quickstart import serving

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "out" / "screenshots" / "model-page.png"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")


@pytest.fixture(scope="module")
def model_page(small_model: Path, small_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of /models/current on a running service whose model carries its evaluation report."""
    model = tmp_path_factory.mktemp("evaluated") / "model"
    shutil.copytree(small_model, model)
    result = CliRunner().invoke(main, ["evaluate", "--model", str(model), "--data", str(small_cohort),
                                       "--out", str(model / "REPORT")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data_dir = tmp_path_factory.mktemp("page-data")
    registry_with(model, data_dir)
    with serving(data_dir, auth=True) as base:
        yield f"{base}/models/current"


@pytest.mark.slow
def test_model_page_has_the_table_and_plots(model_page: str) -> None:
    """The page shows the published Table 1, the known limits, and plots that load as PNG images."""
    page = requests.get(model_page, timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    html = page.text
    assert "<table" in html and "accuracy" in html.lower()
    assert "not been validated on real patients" in html
    # It opens with the clinicians' summary, then the limits, the published figures beside ours, the terms.
    order = [html.index(text) for text in ("In brief, for clinicians", "Known limits", "Table 1: published beside",
                                           "How to read the value estimates", "Honest agreement")]
    assert order == sorted(order), order
    assert "89.7%" in html and "0.3413" in html and "reproduced" in html
    for term in ("WIS", "WDR", "FQE", "ESS", "Q(s₀)"):
        assert f"<strong>{term}</strong>:" in html
    sources = re.findall(r"<img src=['\"]([^'\"]+)['\"]", html)
    assert len(sources) >= 3
    for source in sources:
        image = requests.get(requests.compat.urljoin(model_page, source), timeout=10)
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")


@pytest.mark.slow
def test_model_page_screenshot(model_page: str) -> None:
    """Headless Chromium renders the page to a PNG (skipped, with the reason, where Chromium is absent)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium on this machine: scripts/test.sh installs Debian's chromium when apt-get works")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    profile = SCREENSHOT.parent / "chromium-profile"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1200,4200",
                    f"--screenshot={SCREENSHOT}", model_page], check=True, timeout=120,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(profile, ignore_errors=True)
    data = SCREENSHOT.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000  # a blank page compresses to a few kB
