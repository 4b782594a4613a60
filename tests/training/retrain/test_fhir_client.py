"""The FHIR client against the real server, with faults injected by a local proxy where needed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fhir_server import running_fhir_server, sekmet_available
from tests.training.retrain.data import load, patient_resources
from tests.training.retrain.fault_proxy import Fault, fault_proxy
from training.retrain.client import (
    FhirClient,
    FhirMalformedResponse,
    FhirNotFound,
    FhirRateLimited,
    FhirServerError,
    FhirTimeoutError,
    RetryPolicy,
    SmartBackendAuth,
    parse_retry_after,
)

pytestmark = pytest.mark.fhir_server
PATIENTS = 12


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server of this module's own, loaded with 12 patients of two visits each."""
    if not sekmet_available():
        pytest.skip("the FHIR test server is not installed: run scripts/install.sh dev")
    with running_fhir_server(tmp_path_factory.mktemp("client-fhir")) as base:
        resources = []
        for n in range(PATIENTS):
            resources += patient_resources(f"c{n:02d}", ["2020-01-10", "2020-04-10"])
        load(base, resources)
        yield base


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_paging_follows_next_links(server: str) -> None:
    """A search with a small page size returns every match across pages."""
    client = FhirClient(server, page_size=5)
    patients = list(client.search("Patient"))
    assert len({p["id"] for p in patients}) == PATIENTS
    assert client.requests_made == 3


def test_server_error_is_retried(server: str) -> None:
    """A 500 is retried after a backoff and the search then completes."""
    with fault_proxy(server) as (base, state):
        state.faults.append(Fault("status", match="/Patient", status=500))
        sleeps = Sleeps()
        client = FhirClient(base, sleep=sleeps, retry=RetryPolicy(retries=2, backoff_base=0.2))
        assert len(list(client.search("Patient"))) == PATIENTS
        assert len(sleeps) == 1 and 0.0 <= sleeps[0] <= 0.2


def test_rate_limit_honours_retry_after(server: str) -> None:
    """A 429 with Retry-After: 2 waits at least two seconds before the retry."""
    with fault_proxy(server) as (base, state):
        state.faults.append(Fault("status", match="/Encounter", status=429, retry_after="2"))
        sleeps = Sleeps()
        client = FhirClient(base, sleep=sleeps)
        assert len(list(client.search("Encounter"))) == 2 * PATIENTS
        assert len(sleeps) == 1 and 2.0 <= sleeps[0] < 2.2


def test_retries_are_bounded(server: str) -> None:
    """Faults on every attempt end in the typed error once the retries are spent."""
    with fault_proxy(server) as (base, state):
        state.faults += [Fault("status", match="/Patient", status=503) for _ in range(3)]
        client = FhirClient(base, sleep=Sleeps(), retry=RetryPolicy(retries=2))
        with pytest.raises(FhirServerError) as error:
            list(client.search("Patient"))
        assert error.value.status == 503
        state.faults.clear()
        state.faults += [Fault("status", match="/Patient", status=429) for _ in range(2)]
        with pytest.raises(FhirRateLimited):
            list(FhirClient(base, sleep=Sleeps(), retry=RetryPolicy(retries=1)).search("Patient"))


def test_malformed_page_is_not_retried(server: str) -> None:
    """A truncated JSON page on the second page raises FhirMalformedResponse at once."""
    with fault_proxy(server) as (base, state):
        state.faults.append(Fault("malformed", match="_offset=5"))
        sleeps = Sleeps()
        client = FhirClient(base, page_size=5, sleep=sleeps)
        with pytest.raises(FhirMalformedResponse):
            list(client.search("Patient"))
        assert sleeps == []
        state.faults.append(Fault("not_bundle", match="/Patient"))
        with pytest.raises(FhirMalformedResponse):
            list(client.search("Patient"))


def test_timeout_is_retried_then_typed(server: str) -> None:
    """A request slower than the timeout is retried; if every attempt is slow, FhirTimeoutError."""
    with fault_proxy(server) as (base, state):
        state.faults.append(Fault("hang", match="/Patient", seconds=1.0))
        client = FhirClient(base, timeout=0.3, sleep=Sleeps(), retry=RetryPolicy(retries=1))
        assert len(list(client.search("Patient"))) == PATIENTS
        state.faults += [Fault("hang", match="/Patient", seconds=1.0) for _ in range(2)]
        with pytest.raises(FhirTimeoutError):
            list(client.search("Patient"))


def test_not_found_is_not_retried(server: str) -> None:
    """A 404 raises FhirNotFound without any retry."""
    sleeps = Sleeps()
    client = FhirClient(server, sleep=sleeps)
    with pytest.raises(FhirNotFound):
        client.get_json("Patient/does-not-exist")
    assert sleeps == []


def test_next_link_to_another_host_is_refused(server: str) -> None:
    """A next link outside the server's origin is not followed (it would leak the token)."""
    client = FhirClient(server.replace("127.0.0.1", "localhost"), page_size=5)
    with pytest.raises(FhirMalformedResponse):
        list(client.search("Patient"))


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_smart_backend_services_token_is_cached(server: str, algorithm: str) -> None:
    """The client signs an assertion, gets one token, reuses it, and renews it after expiry."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if algorithm == "RS384" else ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    now = [time.time()]
    with fault_proxy(server, smart_public_key=key.public_key()) as (base, state):
        auth = SmartBackendAuth(base, client_id="epidose", private_key=pem, algorithm=algorithm, clock=lambda: now[0])
        client = FhirClient(base, auth=auth, page_size=5)
        assert len(list(client.search("Patient"))) == PATIENTS
        assert len(list(client.search("Encounter"))) == 2 * PATIENTS
        assert state.token_requests == 1
        now[0] += state.token_lifetime
        list(client.search("Patient"))
        assert state.token_requests == 2
        # A token the server has revoked is replaced once, transparently.
        state.tokens.clear()
        list(client.search("Patient"))
        assert state.token_requests == 3


def test_bulk_export_downloads_ndjson(server: str) -> None:
    """A Patient-level $export returns every resource of the requested types."""
    client = FhirClient(server, retry=RetryPolicy(backoff_max=1.0))
    transaction_time, resources = client.bulk_export(types=["Patient", "Encounter"])
    counts: dict[str, int] = {}
    for resource in resources:
        counts[resource["resourceType"]] = counts.get(resource["resourceType"], 0) + 1
    assert transaction_time
    assert counts == {"Patient": PATIENTS, "Encounter": 2 * PATIENTS}


def test_retry_after_parses_dates() -> None:
    """Retry-After as an HTTP-date becomes the seconds until then."""
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None


def test_backoff_is_capped() -> None:
    """RetryPolicy waits grow exponentially and never exceed the cap."""
    import random

    policy = RetryPolicy(retries=10, backoff_base=1.0, backoff_max=4.0)
    rng = random.Random(0)
    delays = [policy.delay(attempt, None, rng) for attempt in range(10)]
    assert max(delays) <= 4.0 and min(delays) >= 0.0
    assert policy.delay(0, 100.0, rng) <= 4.0 + 0.1


def test_batch_searches_match_single_searches(server: str) -> None:
    """Searches sent together in batch Bundles return what they return alone, across pages."""
    client = FhirClient(server, page_size=1)
    queries = [("Encounter", {"patient": f"c{n:02d}"}) for n in range(PATIENTS)] + [("Patient", {"_id": "c03"})]
    together = sorted(r["id"] for r in client.search_many(queries, per_batch=5))
    alone = sorted(r["id"] for q in queries for r in client.search(*q))
    assert together == alone and len(together) == 2 * PATIENTS + 1


def test_batch_entry_errors_are_typed(server: str) -> None:
    """A failed entry inside a batch response raises the same typed error as a failed request."""
    with pytest.raises(FhirNotFound):
        list(FhirClient(server)._batch_entry({"response": {"status": "404 Not Found"}}))
    with pytest.raises(FhirMalformedResponse):
        list(FhirClient(server)._batch_entry({"response": {}}))


def test_client_from_settings_uses_smart_key_file(server: str, tmp_path: Path) -> None:
    """Settings with auth=smart and a PEM key file give a client that authenticates on its own."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from training.retrain.settings import RetrainSettings

    key = ec.generate_private_key(ec.SECP384R1())
    pem = tmp_path / "client.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with fault_proxy(server, smart_public_key=key.public_key()) as (base, state):
        settings = RetrainSettings.from_env({
            "EPIDOSE_FHIR_SERVER_URL": base, "EPIDOSE_FHIR_AUTH": "smart", "EPIDOSE_SMART_CLIENT_ID": "epidose",
            "EPIDOSE_SMART_PRIVATE_KEY": str(pem), "EPIDOSE_SMART_ALGORITHM": "ES384",
        })
        client = FhirClient.from_settings(settings)
        assert isinstance(client.auth, SmartBackendAuth) and "epidose" in repr(client.auth)
        assert len(list(client.search("Patient"))) == PATIENTS and state.token_requests == 1
    bearer = FhirClient.from_settings(RetrainSettings(fhir_server_url=server, auth="bearer", bearer_token="t0ken"))
    assert bearer.auth.headers() == {"Authorization": "Bearer t0ken"} and "t0ken" not in repr(bearer.auth)


def test_results_lost_between_pages_fail_the_search(server: str) -> None:
    """When the pages bring fewer results than the first page announced, FhirPagingError is raised."""
    from training.retrain.client import FhirPagingError

    with fault_proxy(server) as (base, state):
        state.faults.append(Fault("short_page", match="_offset=5"))
        with pytest.raises(FhirPagingError):
            list(FhirClient(base, page_size=5).search("Patient"))
        assert len(list(FhirClient(base, page_size=5).search("Patient"))) == PATIENTS
