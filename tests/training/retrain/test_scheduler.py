"""The scheduler: triggers from settings, coalescing, one instance, and one scheduler per data folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from training.retrain.scheduler import SchedulerAlreadyRunning, build_scheduler, make_trigger, scheduler_lock
from training.retrain.settings import RetrainSettings


def test_triggers_from_schedule() -> None:
    """An interval schedule gives an IntervalTrigger; a cron expression a CronTrigger."""
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    interval = make_trigger(RetrainSettings(schedule="30m"))
    assert isinstance(interval, IntervalTrigger) and interval.interval.total_seconds() == 1800
    assert isinstance(make_trigger(RetrainSettings(schedule="15 3 * * 1")), CronTrigger)


def test_job_coalesces_and_never_overlaps(tmp_path: Path) -> None:
    """The scheduled job runs on its trigger with coalesce and max_instances=1."""
    runs: list[float] = []
    seen: dict[str, object] = {}
    settings = RetrainSettings(data_dir=tmp_path, schedule="1s")

    def job(received: RetrainSettings) -> None:
        runs.append(time.monotonic())
        scheduled = scheduler.get_job("retrain")
        seen.update(coalesce=scheduled.coalesce, max_instances=scheduled.max_instances, settings=received)
        scheduler.shutdown(wait=False)

    scheduler = build_scheduler(settings, job)
    timer = threading.Timer(10, lambda: scheduler.shutdown(wait=False))
    timer.start()
    scheduler.start()
    timer.cancel()
    assert len(runs) == 1
    assert seen == {"coalesce": True, "max_instances": 1, "settings": settings}


def test_second_scheduler_refuses_to_start(tmp_path: Path) -> None:
    """While one process holds the lock, another scheduler on the same folder refuses."""
    lock = tmp_path / "scheduler.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from training.retrain.scheduler import scheduler_lock\n"
         f"with scheduler_lock(Path({str(lock)!r})):\n    print('locked', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(SchedulerAlreadyRunning) as error, scheduler_lock(lock):
            pass
        assert str(holder.pid) in str(error.value)
        result = subprocess.run(
            [sys.executable, "-m", "plugin.cli", "scheduler"], capture_output=True, text=True, timeout=60,
            env={"PATH": "/usr/bin:/bin", "EPIDOSE_RETRAIN_DIR": str(tmp_path), "HOME": str(tmp_path),
                 "EPIDOSE_RETRAIN_SCHEDULE": "1d"},
        )
        assert result.returncode != 0 and "already running" in result.stderr
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    with scheduler_lock(lock):
        pass  # free again once the holder is gone


def test_overlapping_runs_do_not_share_the_store(tmp_path: Path) -> None:
    """While a run holds the run lock, another run is recorded as failed without touching anything."""
    import fcntl

    from training.retrain.job import retrain_once
    from training.retrain.records import read_records

    settings = RetrainSettings(data_dir=tmp_path / "retrain", registry_dir=tmp_path / "models", source_dir=tmp_path)
    settings.data_dir.mkdir(parents=True)
    with (settings.data_dir / "run.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        record = retrain_once(settings)
    assert record.decision == "failed" and "in progress" in record.reason
    assert not settings.store_dir.exists()
    assert read_records(settings.runs_file)[0]["reason"] == record.reason


@pytest.mark.slow
def test_scheduler_process_runs_the_job(tmp_path: Path) -> None:
    """``epidose scheduler`` in its own process runs retrain_once on its interval and writes records."""
    from training.simulator.cohort import write_cohort

    write_cohort(tmp_path / "cohort", 16, seed=4)
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "EPIDOSE_DATA_DIR": str(tmp_path / "data"),
        "EPIDOSE_RETRAIN_SOURCE": str(tmp_path / "cohort"), "EPIDOSE_RETRAIN_SCHEDULE": "1s",
        "EPIDOSE_RETRAIN_INITIAL_STEPS": "50", "EPIDOSE_RETRAIN_BEHAVIOUR_STEPS": "20",
        "EPIDOSE_RETRAIN_BOOTSTRAP": "20", "EPIDOSE_RETRAIN_HOLDOUT": "0.3",
    }
    runs = tmp_path / "data" / "retrain" / "runs.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "plugin.cli", "scheduler"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (not runs.exists() or len(runs.read_text().splitlines()) < 2):
            time.sleep(0.5)
        assert os.getpriority(os.PRIO_PROCESS, process.pid) >= 10  # niced below the service
    finally:
        process.terminate()
        process.wait(timeout=30)
    decisions = [json.loads(line)["decision"] for line in runs.read_text().splitlines()]
    assert decisions[:2] == ["promoted", "refused"]
