"""Prometheus metrics through prometheus_client, summed across gunicorn workers by its multiprocess mode.

A scrape reaches one worker (they accept on one socket). So ``epidose serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a private folder before the workers start (:func:`multiprocess_folder`);
every worker writes its counts there, and whichever worker answers ``/metrics`` reads them all, so
each counter is the service's total. Without that variable (an app in a test, the sandbox) the counts
are this process's own. Counts carry services, statuses, indicators and reasons: never a patient.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

LATENCY_BUCKETS_SECONDS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
MULTIPROC_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


def _multiproc_dir() -> str | None:
    return os.environ.get(MULTIPROC_VARIABLE) or None


class Metrics:
    """Request counts and latency per service, cards by indicator, feedback outcomes, JWT refusals, model version."""

    def __init__(self) -> None:
        # Imported here, not at the top: prometheus_client chooses its multiprocess mode when it is first
        # imported, which must come after `epidose serve` has set PROMETHEUS_MULTIPROC_DIR.
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            disable_created_metrics,
            values,
        )

        disable_created_metrics()  # no *_created series: the counters are what operators read

        if _multiproc_dir() is not None and values.ValueClass is values.MutexValue:
            raise RuntimeError(f"prometheus_client was imported before {MULTIPROC_VARIABLE} was set: "
                               "the workers' counts would not be shared")
        # One registry per app, so apps built side by side in one process (tests) do not collide.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = Counter("epidose_requests", "CDS Hooks calls by service and HTTP status.",
                                 ("service", "status"), registry=r)
        self._latency = Histogram("epidose_request_seconds", "Latency of CDS Hooks calls by service.", ("service",),
                                  buckets=LATENCY_BUCKETS_SECONDS, registry=r)
        self._cards = Counter("epidose_cards", "Cards served by service and indicator.", ("service", "indicator"),
                              registry=r)
        self._out_of_scope = Counter("epidose_out_of_scope",
                                     "Calls answered with no card: patient out of scope, by reason.",
                                     ("service", "reason"), registry=r)
        self._feedback = Counter("epidose_feedback", "Feedback items by service and outcome.", ("service", "outcome"),
                                 registry=r)
        self._feedback_repeated = Counter("epidose_feedback_repeated",
                                          "Feedback items repeating a stored card and outcome (not stored again).",
                                          ("service",), registry=r)
        self._comments_dropped = Counter("epidose_override_comments_dropped",
                                         "Free-text override comments not stored (EPIDOSE_KEEP_OVERRIDE_COMMENTS off).",
                                         ("service",), registry=r)
        self._auth_refusals = Counter("epidose_auth_refusals", "Client JWTs refused (401) by reason.", ("reason",),
                                      registry=r)
        # livemax: a version is 1 while any live worker serves it (a dead worker's value is dropped).
        self._model_info = Gauge("epidose_model_info", "The model versions the workers serve (value 1).", ("version",),
                                 multiprocess_mode="livemax", registry=r)
        self._model_version: str | None = None

    @property
    def model_version(self) -> str | None:
        return self._model_version

    @model_version.setter
    def model_version(self, version: str | None) -> None:
        if version == self._model_version:
            return
        if self._model_version is not None:
            self._model_info.labels(self._model_version).set(0)
        if version is not None:
            self._model_info.labels(version).set(1)
        self._model_version = version

    def observe_request(self, service: str, status: int, seconds: float) -> None:
        self._requests.labels(service, str(status)).inc()
        self._latency.labels(service).observe(seconds)

    def observe_card(self, service: str, indicator: str) -> None:
        self._cards.labels(service, indicator).inc()

    def observe_out_of_scope(self, service: str, reason: str) -> None:
        """A call answered with no card because the patient is not one the service is for."""
        self._out_of_scope.labels(service, reason).inc()

    def observe_feedback(self, service: str, outcome: str) -> None:
        self._feedback.labels(service, outcome).inc()

    def observe_repeated_feedback(self, service: str, count: int) -> None:
        self._feedback_repeated.labels(service).inc(count)

    def observe_dropped_comment(self, service: str) -> None:
        self._comments_dropped.labels(service).inc()

    def observe_auth_refusal(self, reason: str) -> None:
        self._auth_refusals.labels(reason).inc()

    def render(self) -> str:
        """The text exposition: every worker's counts summed in multiprocess mode, else this process's."""
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess

        folder = _multiproc_dir()
        if folder is None:
            return generate_latest(self.registry).decode("utf-8")
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=folder)
        return generate_latest(merged).decode("utf-8")


@contextlib.contextmanager
def multiprocess_folder() -> Iterator[Path]:
    """A private (0700) folder for the workers' metric files, named in PROMETHEUS_MULTIPROC_DIR, removed at exit.

    Set before any worker starts (prometheus_client reads the variable when it is imported), so the
    variable is inherited by every worker gunicorn forks.
    """
    folder = Path(tempfile.mkdtemp(prefix="epidose-metrics-"))  # mkdtemp creates it 0700
    previous = os.environ.get(MULTIPROC_VARIABLE)
    os.environ[MULTIPROC_VARIABLE] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_VARIABLE, None)
        else:
            os.environ[MULTIPROC_VARIABLE] = previous
        shutil.rmtree(folder, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay: what it counted still happened)."""
    folder = _multiproc_dir()
    if folder is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, folder)
