"""The root of every exception epidose raises on purpose, in the lowest layer so every package can use it.

An :class:`EpidoseError`'s message is safe to show a caller or a terminal: no patient identifiers, no
tokens. Each subclass lives beside the code that raises it; the service answers each with one HTTP
status and an OperationOutcome (the table in ``plugin/errors.py``), and the command line prints one
line and exits with one status (the table in ``plugin/cli/__init__.py``), never a traceback.

The tree (docs/ARCHITECTURE.md, "Errors")::

    EpidoseError                      fhir_mapping/errors.py
    ├── InputError (ValueError)       fhir_mapping/errors.py      data handed in cannot be used (no visits in a folder)
    ├── MappingError                  fhir_mapping/problems.py    FHIR input unusable as a whole, with its Problems
    ├── SettingsError (ValueError)    training/settings_base.py   an unknown EPIDOSE_* name or an unusable value
    ├── ArtifactError                 training/inference.py       a model folder that cannot be served
    ├── ModelCheckError               training/artifact/check.py  a model folder that must not be served
    ├── RegistryError                 training/artifact/registry.py  unknown version, nothing to roll back to
    ├── DatabaseUnavailable           training/database.py        the shared-state database cannot be reached
    ├── FhirError                     training/retrain/errors.py  talking to a FHIR server (10 kinds below it)
    ├── SchedulerAlreadyRunning       training/retrain/scheduler.py  another scheduler holds the data folder
    ├── JsonBodyError (ValueError)    plugin/jsonbody.py          a body or answer that is not JSON we accept
    ├── LoadError, SandboxError       plugin/load.py, plugin/sandbox.py  the integrator's tools
    └── ServiceError                  plugin/errors.py            a hook call answered with a 4xx/5xx
        ├── BadRequest, UnsupportedMediaType, NotFound, PreconditionFailed, ModelUnavailable
        └── Unauthorized → Refused    plugin/security.py          a bare 401
"""

from __future__ import annotations


class EpidoseError(Exception):
    """An error epidose raises on purpose, with a message safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(EpidoseError, ValueError):
    """Data handed to a command or a function cannot be used as a whole; the message says which and why."""
