"""Prometheus text-format metrics of one worker process (no client library: a few counters and histograms).

Each gunicorn worker keeps its own counts; the ``worker`` label keeps their series apart, so a
scraper summing over workers (``sum without (worker)``) gets service totals.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import defaultdict
from typing import Final

LATENCY_BUCKETS_SECONDS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Request counts and latency per service, cards by indicator, feedback outcomes, JWT refusals, model version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str], int] = defaultdict(int)  # (service, status)
        self.latency_counts: dict[str, list[int]] = defaultdict(lambda: [0] * (len(LATENCY_BUCKETS_SECONDS) + 1))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.cards: dict[tuple[str, str], int] = defaultdict(int)  # (service, indicator)
        self.feedback: dict[tuple[str, str], int] = defaultdict(int)  # (service, outcome)
        self.out_of_scope: dict[tuple[str, str], int] = defaultdict(int)  # (service, reason)
        self.auth_refusals: dict[str, int] = defaultdict(int)  # reason (plugin.security.REFUSAL_REASONS)
        self.model_version: str | None = None

    def observe_request(self, service: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(service, str(status))] += 1
            self.latency_counts[service][bisect.bisect_left(LATENCY_BUCKETS_SECONDS, seconds)] += 1
            self.latency_sum[service] += seconds

    def observe_card(self, service: str, indicator: str) -> None:
        with self._lock:
            self.cards[(service, indicator)] += 1

    def observe_out_of_scope(self, service: str, reason: str) -> None:
        """A call answered with no card because the patient is not one the service is for."""
        with self._lock:
            self.out_of_scope[(service, reason)] += 1

    def observe_feedback(self, service: str, outcome: str) -> None:
        with self._lock:
            self.feedback[(service, outcome)] += 1

    def observe_auth_refusal(self, reason: str) -> None:
        with self._lock:
            self.auth_refusals[reason] += 1

    def render(self) -> str:
        worker = str(os.getpid())
        out: list[str] = []
        with self._lock:
            out += ["# HELP epidose_requests_total CDS Hooks calls by service and HTTP status.",
                    "# TYPE epidose_requests_total counter"]
            for (service, status), count in sorted(self.requests.items()):
                out.append(f'epidose_requests_total{{service="{service}",status="{status}",worker="{worker}"}} {count}')
            out += ["# HELP epidose_request_seconds Latency of CDS Hooks calls by service.",
                    "# TYPE epidose_request_seconds histogram"]
            for service, counts in sorted(self.latency_counts.items()):
                cumulative = 0
                for bound, count in zip((*LATENCY_BUCKETS_SECONDS, float("inf")), counts, strict=True):
                    cumulative += count
                    le = "+Inf" if bound == float("inf") else f"{bound:g}"
                    out.append(f'epidose_request_seconds_bucket{{service="{service}",le="{le}",worker="{worker}"}} {cumulative}')
                out.append(f'epidose_request_seconds_sum{{service="{service}",worker="{worker}"}} {self.latency_sum[service]:.6f}')
                out.append(f'epidose_request_seconds_count{{service="{service}",worker="{worker}"}} {cumulative}')
            out += ["# HELP epidose_cards_total Cards served by service and indicator.", "# TYPE epidose_cards_total counter"]
            for (service, indicator), count in sorted(self.cards.items()):
                out.append(f'epidose_cards_total{{service="{service}",indicator="{indicator}",worker="{worker}"}} {count}')
            out += ["# HELP epidose_out_of_scope_total Calls answered with no card: patient out of scope, by reason.",
                    "# TYPE epidose_out_of_scope_total counter"]
            for (service, reason), count in sorted(self.out_of_scope.items()):
                out.append(f'epidose_out_of_scope_total{{service="{service}",reason="{reason}",worker="{worker}"}} {count}')
            out += ["# HELP epidose_feedback_total Feedback items by service and outcome.",
                    "# TYPE epidose_feedback_total counter"]
            for (service, outcome), count in sorted(self.feedback.items()):
                out.append(f'epidose_feedback_total{{service="{service}",outcome="{outcome}",worker="{worker}"}} {count}')
            out += ["# HELP epidose_auth_refusals_total Client JWTs refused (401) by reason.",
                    "# TYPE epidose_auth_refusals_total counter"]
            for reason, count in sorted(self.auth_refusals.items()):
                out.append(f'epidose_auth_refusals_total{{reason="{reason}",worker="{worker}"}} {count}')
            out += ["# HELP epidose_model_info The model version this worker serves (value 1).",
                    "# TYPE epidose_model_info gauge"]
            if self.model_version is not None:
                out.append(f'epidose_model_info{{version="{_escape(self.model_version)}",worker="{worker}"}} 1')
        return "\n".join(out) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
