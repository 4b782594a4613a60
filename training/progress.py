"""Phases of a long job, told to a person waiting at a terminal: never silent for more than a few seconds.

``Phases`` prints ``[2/5] load the cohort ...`` when a phase starts and ``done in 3.1 s`` when it ends.
While a phase runs without a progress bar of its own, a background thread repeats
``... still running (12 s)`` every ``HEARTBEAT_SECONDS``, so a slow machine never looks hung.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

HEARTBEAT_SECONDS = 5.0


class Phases:
    """Numbered phases on ``stream`` (standard error by default); all output off when ``enabled`` is false."""

    def __init__(self, total: int, *, enabled: bool = True, stream: TextIO | None = None,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        self.total = total
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.heartbeat_seconds = heartbeat_seconds
        self.number = 0
        self.started = time.perf_counter()
        # (phase name, wall seconds, CPU seconds of this process) of every finished phase, shown or not.
        self.timings: list[tuple[str, float, float]] = []

    def say(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    @contextmanager
    def phase(self, name: str, *, has_bar: bool = False) -> Iterator[None]:
        """Announce ``name``, keep a heartbeat unless the phase shows its own bar, report its duration."""
        self.number += 1
        label = f"[{self.number}/{self.total}]"
        self.say(f"{label} {name} ...")
        started = time.perf_counter()
        cpu_started = time.process_time()
        stop = threading.Event()
        beat = None
        if self.enabled and not has_bar:
            def heartbeat() -> None:
                while not stop.wait(self.heartbeat_seconds):
                    self.say(f"{' ' * len(label)} ... still running ({time.perf_counter() - started:.0f} s)")
            beat = threading.Thread(target=heartbeat, daemon=True, name="progress-heartbeat")
            beat.start()
        try:
            yield
        finally:
            stop.set()
            if beat is not None:
                beat.join()
        self.timings.append((name, time.perf_counter() - started, time.process_time() - cpu_started))
        self.say(f"{label} {name}: done in {time.perf_counter() - started:.1f} s")

    def step(self, text: str) -> None:
        """A line inside the current phase, naming the part that starts now."""
        self.say(f"{' ' * (len(str(self.number)) + len(str(self.total)) + 3)} · {text}")

    def finish(self, what: str) -> None:
        self.say(f"{what} in {time.perf_counter() - self.started:.0f} s")
