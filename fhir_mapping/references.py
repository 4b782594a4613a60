"""The origin of a URL, and whether two URLs share it: the one rule for following a FHIR server's links.

Both FHIR readers (the service's prefetch completion, plugin/gather.py, and the retraining client,
training/retrain/client.py) send an access token with their requests, so they follow a ``next`` link
only to the server's own origin (RFC 6454: scheme, host and port, with the scheme's default port
filled in and case ignored).
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str]:
    """(scheme, host:port) of ``url``, lower-cased, the default port filled in; ValueError when unparsable.

    >>> origin("HTTPS://Example.org/fhir/Patient?_count=5")
    ('https', 'example.org:443')
    """
    parts = urlsplit(url)
    port = parts.port  # raises ValueError for a port that is not a number
    scheme = parts.scheme.lower()
    return scheme, f"{(parts.hostname or '').lower()}:{port or DEFAULT_PORTS.get(scheme)}"


def same_origin(url: str, base_url: str) -> bool:
    """Whether ``url`` is on ``base_url``'s origin (False when either cannot be parsed)."""
    try:
        return origin(url) == origin(base_url)
    except ValueError:
        return False
