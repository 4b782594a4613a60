"""The one same-origin rule both FHIR readers follow before they send a token along a next link."""

from __future__ import annotations

import pytest

from fhir_mapping.references import origin, same_origin


@pytest.mark.parametrize(("url", "base", "same"), [
    ("http://127.0.0.1:8090/fhir/Patient?_offset=5", "http://127.0.0.1:8090/fhir", True),
    ("HTTPS://EHR.example.org/fhir?page=2", "https://ehr.example.org:443/fhir", True),  # case and default port
    ("https://ehr.example.org:8443/fhir", "https://ehr.example.org/fhir", False),
    ("http://ehr.example.org/fhir", "https://ehr.example.org/fhir", False),
    ("https://attacker.example/fhir", "https://ehr.example.org/fhir", False),
    ("Patient?_offset=5", "https://ehr.example.org/fhir", False),  # relative: not followed as is
    ("https://ehr.example.org:port/fhir", "https://ehr.example.org/fhir", False),  # unparsable port
])
def test_same_origin(url: str, base: str, same: bool) -> None:
    """Scheme, host and port must match, the default port filled in and case ignored."""
    assert same_origin(url, base) is same


def test_an_unparsable_port_is_an_error() -> None:
    with pytest.raises(ValueError):
        origin("http://host:99999999/")
