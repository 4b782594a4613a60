"""Fixtures and set-up for the mapping tests."""

from __future__ import annotations

import contextlib
import warnings

# When a property test fails, Hypothesis imports libcst to suggest a patch; libcst still uses the
# deprecated mypy_extensions.TypedDict, and with warnings as errors that import turns the readable
# failure into a pytest INTERNALERROR. Import it once here with that warning silenced (a Hypothesis
# without this private module simply has nothing to pre-import).
with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.simplefilter("ignore", DeprecationWarning)
    import hypothesis.extra._patching  # noqa: F401
