"""Incremental pull into the raw store: only what is new, and nothing committed when a pull fails."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.fhir_server import free_port, running_fhir_server, sekmet_available
from tests.training.retrain.data import load, patient_resources
from tests.training.retrain.fault_proxy import Fault, fault_proxy
from training.retrain.client import FhirClient, FhirError, FhirMalformedResponse, RetryPolicy
from training.retrain.pull import pull_bulk, pull_from_folder, pull_from_server
from training.retrain.resources import ResourceStore

pytestmark = pytest.mark.fhir_server


@pytest.fixture
def server(fresh_fhir_server: str) -> str:
    """A fresh real server with 6 patients of two visits (5 resources each)."""
    resources = []
    for n in range(6):
        resources += patient_resources(f"p{n}", ["2020-01-10", "2020-04-10"])
    load(fresh_fhir_server, resources)
    return fresh_fhir_server


def _quick(base: str, **kwargs: Any) -> FhirClient:
    return FhirClient(base, page_size=4, retry=RetryPolicy(retries=kwargs.pop("retries", 0)), sleep=lambda _: None, **kwargs)


def test_first_pull_takes_everything_and_sets_the_watermark(server: str, tmp_path: Path) -> None:
    """The first pull stores every patient's resources once and records the newest Encounter time."""
    store = ResourceStore(tmp_path / "store")
    result = pull_from_server(_quick(server), store)
    assert result.new == result.fetched == 6 * 5
    assert store.counts_by_type() == {"Encounter": 12, "Observation": 12, "Patient": 6}
    assert result.watermark_after is not None and store.watermark() == result.watermark_after


def test_second_pull_fetches_only_new_resources(server: str, tmp_path: Path) -> None:
    """After new visits arrive, the pull fetches exactly them (known patients) plus a new patient."""
    store = ResourceStore(tmp_path / "store")
    pull_from_server(_quick(server), store)
    again = pull_from_server(_quick(server), store)
    assert (again.fetched, again.new) == (0, 0)
    new_visit = patient_resources("p1", ["2020-01-10", "2020-04-10", "2020-07-10"])[-2:]
    newcomer = patient_resources("q9", ["2020-07-11"])
    load(server, new_visit + newcomer)
    result = pull_from_server(_quick(server), store)
    assert result.fetched == result.new == len(new_visit) + len(newcomer)
    assert result.patients == 2
    assert store.count() == 6 * 5 + 5


def test_failed_pull_commits_nothing(server: str, tmp_path: Path) -> None:
    """A 500 half-way leaves store and watermark untouched; the next pull succeeds."""
    store = ResourceStore(tmp_path / "store")
    with fault_proxy(server) as (base, state):
        state.faults.append(Fault("status", match="/Observation", status=500))
        with pytest.raises(FhirError):
            pull_from_server(_quick(base), store)
        assert store.watermark() is None and store.count() == 0
        state.faults.append(Fault("malformed", match="_offset=4"))
        with pytest.raises(FhirMalformedResponse):
            pull_from_server(_quick(base), store)
        assert store.watermark() is None and store.count() == 0
        assert pull_from_server(_quick(base), store).new == 30


@pytest.mark.slow
def test_server_stopping_mid_pull_leaves_the_watermark(tmp_path: Path) -> None:
    """When the real server stops between requests, the pull fails; after a restart it completes."""
    if not sekmet_available():
        pytest.skip("the FHIR test server is not installed")
    port = free_port()
    store = ResourceStore(tmp_path / "store")
    with running_fhir_server(tmp_path / "fhir", port=port) as base:
        load(base, patient_resources("a", ["2020-01-01", "2020-02-01"]))
    first = pull_from_server_after_stop(tmp_path, port, store)
    assert first is None
    with running_fhir_server(tmp_path / "fhir", port=port) as base:
        load(base, patient_resources("b", ["2020-03-01"]))
        result = pull_from_server(_quick(base), store)
    assert result.new == 5 + 3 and store.watermark() == result.watermark_after


def pull_from_server_after_stop(tmp_path: Path, port: int, store: ResourceStore) -> None:
    """Run a pull whose third request finds the server gone; check nothing was committed."""
    stack = contextlib.ExitStack()
    base = stack.enter_context(running_fhir_server(tmp_path / "fhir", port=port))

    class StoppingSession(requests.Session):
        calls = 0

        def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            StoppingSession.calls += 1
            if StoppingSession.calls == 3:
                stack.close()  # the real server process is terminated here
            return super().request(*args, **kwargs)

    with pytest.raises(FhirError):
        pull_from_server(_quick(base, session=StoppingSession()), store)
    stack.close()
    assert store.watermark() is None and store.count() == 0


def test_bulk_pull_uses_since(server: str, tmp_path: Path) -> None:
    """Bulk pulls everything first, then only what changed since the export's transaction time."""
    store = ResourceStore(tmp_path / "store")
    client = FhirClient(server, retry=RetryPolicy(backoff_max=1.0))
    first = pull_bulk(client, store)
    assert first.new == 30 and store.watermark() is not None
    load(server, patient_resources("q1", ["2021-01-01"]))
    second = pull_bulk(client, store)
    assert second.fetched == second.new == 3


def test_folder_source_is_deduplicated(tmp_path: Path) -> None:
    """A folder in the cohort layout is read whole; reading it again adds nothing."""
    folder = tmp_path / "cohort" / "ndjson"
    folder.mkdir(parents=True)
    by_type: dict[str, list[str]] = {}
    for resource in patient_resources("f1", ["2020-01-01", "2020-02-01"]):
        by_type.setdefault(resource["resourceType"], []).append(json.dumps(resource))
    for resource_type, lines in by_type.items():
        (folder / f"{resource_type}.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "Unrelated.ndjson").write_text('{"resourceType": "Unrelated", "id": "u"}\n', encoding="utf-8")
    store = ResourceStore(tmp_path / "store")
    assert pull_from_folder(tmp_path / "cohort", store).new == 5
    assert pull_from_folder(tmp_path / "cohort", store).new == 0
    assert store.counts_by_type() == {"Encounter": 2, "Observation": 2, "Patient": 1}


def test_settings_choose_the_pull(server: str, tmp_path: Path) -> None:
    """The job pulls by search, by $export or from a folder according to its settings."""
    from training.retrain.job import pull
    from training.retrain.settings import RetrainSettings

    search = pull(RetrainSettings(data_dir=tmp_path / "a", fhir_server_url=server))
    bulk = pull(RetrainSettings(data_dir=tmp_path / "b", fhir_server_url=server, bulk_export=True, backoff_max=1.0))
    assert (search.source, bulk.source) == ("fhir", "bulk")
    assert search.new == bulk.new == 30
    with pytest.raises(ValueError):
        pull(RetrainSettings(data_dir=tmp_path / "c"))
