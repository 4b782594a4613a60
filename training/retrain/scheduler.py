"""The retraining scheduler: APScheduler 3.11 ``BlockingScheduler`` in a process of its own.

Never inside web workers: with several gunicorn workers each would run every job. One scheduler per
data folder is enforced with an fcntl lock file (a second one refuses to start). The process lowers
its own priority (``os.nice``) and uses one torch thread, so retraining never starves the service.
Jobs coalesce (missed runs collapse into one) and never overlap (``max_instances=1``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from fhir_mapping.errors import EpidoseError
from training.private_files import locked_file
from training.retrain.settings import RetrainSettings

log = logging.getLogger(__name__)
JOB_ID = "retrain"
# A run missed while the machine slept still happens if it is at most this late (seconds).
MISFIRE_GRACE_S = 3600


class SchedulerAlreadyRunning(EpidoseError):
    """Another scheduler holds the lock for this data folder."""


@contextlib.contextmanager
def scheduler_lock(path: Path) -> Iterator[IO[str]]:
    """Hold the lock on ``path`` for the life of the scheduler, its pid written in it; refuse when it is held."""
    with locked_file(path, wait=False) as handle:
        if handle is None:
            holder = path.read_text(encoding="utf-8").strip() if path.exists() else ""
            raise SchedulerAlreadyRunning(f"a scheduler is already running (pid {holder or 'unknown'}, lock {path})")
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield handle


@contextlib.contextmanager
def _one_scheduler(settings: RetrainSettings) -> Iterator[None]:
    """One scheduler per deployment: an advisory lock when hosts share PostgreSQL, else the lock file."""
    from training.retrain.records import shared_database

    database = shared_database(settings)
    if database is None:
        with scheduler_lock(settings.lock_file):
            yield
        return
    with database.try_lock("scheduler") as acquired:
        if not acquired:
            raise SchedulerAlreadyRunning(f"a scheduler is already running against {database.describe()}")
        yield


def make_trigger(settings: RetrainSettings) -> Any:
    """An IntervalTrigger for schedules like ``6h``, else a CronTrigger from the five-field expression."""
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    seconds = settings.interval_seconds()
    if seconds is not None:
        return IntervalTrigger(seconds=seconds)
    return CronTrigger.from_crontab(settings.schedule)


def build_scheduler(settings: RetrainSettings, job: Callable[[RetrainSettings], Any]) -> Any:
    """A BlockingScheduler with the retraining job on the configured trigger (not started)."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = BlockingScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_S}
    )
    scheduler.add_job(job, trigger=make_trigger(settings), args=[settings], id=JOB_ID, name="retrain_once")
    return scheduler


def lower_priority(niceness: int) -> None:
    """Yield the CPU to the service: raise our niceness and keep torch to one thread."""
    if niceness > 0:
        with contextlib.suppress(OSError):
            os.nice(niceness)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def run_scheduler(settings: RetrainSettings, job: Callable[[RetrainSettings], Any] | None = None) -> None:
    """Take the lock, lower priority and run the scheduler until interrupted."""
    if job is None:
        from training.retrain.job import retrain_once

        job = retrain_once
    with _one_scheduler(settings):
        lower_priority(settings.nice)
        scheduler = build_scheduler(settings, job)
        log.info("retraining scheduled: %s", settings.schedule)
        with contextlib.suppress(KeyboardInterrupt, SystemExit):
            scheduler.start()
