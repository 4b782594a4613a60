"""Long jobs announce each phase and keep talking while a phase runs without a bar of its own."""

from __future__ import annotations

import io
import time

from training.progress import Phases


def test_each_phase_is_numbered_and_timed_and_a_quiet_phase_has_a_heartbeat() -> None:
    stream = io.StringIO()
    phases = Phases(2, stream=stream, heartbeat_seconds=0.05)
    with phases.phase("simulate"):
        time.sleep(0.3)
    with phases.phase("train", has_bar=True):
        phases.step("fit")
        time.sleep(0.2)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[1/2] simulate ..."
    beats = [line for line in lines if "still running" in line]
    assert len(beats) >= 3, lines  # about every 0.05 s during the 0.3 s phase
    assert lines.index("[2/2] train ...") > lines.index(beats[-1])  # no heartbeat once a bar takes over
    assert lines[-2] == "      · fit"  # a part of the phase, indented under its number
    assert lines[-1].startswith("[2/2] train: done in 0.")


def test_nothing_is_printed_when_disabled() -> None:
    stream = io.StringIO()
    phases = Phases(1, enabled=False, stream=stream, heartbeat_seconds=0.01)
    with phases.phase("simulate"):
        time.sleep(0.05)
    phases.finish("built")
    assert stream.getvalue() == ""


def test_phases_keep_the_wall_and_cpu_seconds_of_each_phase_even_when_silent() -> None:
    phases = Phases(2, enabled=False)
    with phases.phase("spin"):
        deadline = time.process_time() + 0.05
        while time.process_time() < deadline:
            pass
    with phases.phase("sleep"):
        time.sleep(0.05)
    (spin, spin_wall, spin_cpu), (sleep, sleep_wall, sleep_cpu) = phases.timings
    assert (spin, sleep) == ("spin", "sleep")
    assert spin_cpu >= 0.05 and spin_wall >= spin_cpu * 0.5
    assert sleep_wall >= 0.05 and sleep_cpu < sleep_wall
