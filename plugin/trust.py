"""Whom the service trusts, in words for the operator at start: no JWT or HTTP library imported here.

``epidose serve`` says these lines in the gunicorn master before it forks its workers. Importing PyJWT
or requests there would import ``ssl``'s classes into modules gevent cannot patch afterwards (each
gevent worker patches at its start, and warns that ssl was imported first), so the master imports
this module, not :mod:`plugin.security`.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from plugin.settings import Settings

__all__ = ["allowed_jkus", "startup_notices", "trust_summary"]


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def allowed_jkus(settings: Settings, issuer: str) -> tuple[str, ...]:
    """The ``jku`` URLs an issuer without pinned keys may name: allowlisted and on the issuer's origin."""
    return tuple(url for url in settings.jku_allowlist if _origin(url) == _origin(issuer))


def trust_summary(settings: Settings) -> list[str]:
    """One line per trusted issuer: where its keys come from."""
    lines = []
    for issuer, source in settings.jwks.items():
        if source:
            lines.append(f"trusting issuer {issuer!r} with keys pinned from {source} (a token's jku is not followed)")
        else:
            lines.append(f"trusting issuer {issuer!r} with keys from its jku, allowed: "
                         f"{', '.join(allowed_jkus(settings, issuer)) or 'none'}")
    return lines


def startup_notices(settings: Settings) -> list[tuple[int, str]]:
    """What an operator must read at start, as (logging level, line): whom the service trusts, what is off."""
    notices: list[tuple[int, str]] = []
    if settings.auth:
        notices += [(logging.INFO, line) for line in trust_summary(settings)]
        if not settings.jwks:
            notices.append((logging.WARNING,
                            "EPIDOSE_AUTH is on but EPIDOSE_JWKS trusts no issuer: every CDS call will be refused with "
                            "401. Set EPIDOSE_JWKS to map each EHR's issuer to its key set (see docs/ehr-integration.md)."))
        if not settings.public_base_url:
            notices.append((logging.WARNING,
                            "EPIDOSE_PUBLIC_BASE_URL is not set (allowed on a loopback bind only): the JWT audience is "
                            "checked against the URL built from the request's Host header."))
    else:
        notices.append((logging.WARNING,
                        "!!! EPIDOSE_AUTH=off: JWT AUTHENTICATION IS DISABLED. Any caller can request cards. "
                        "Use this only for local development and benchmarks. !!!"))
    return notices
