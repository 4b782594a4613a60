"""``epidose serve``: the CDS Hooks service under gunicorn, after building the default model once."""

from __future__ import annotations

import gc
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import click

log = logging.getLogger("epidose.serve")
SERVE_WORKER_CONNECTIONS = 1000  # per gevent worker: open connections, slow or not
SERVE_THREADS = 16  # per gthread worker
SERVE_KEEPALIVE_SECONDS = 5  # an idle kept-alive connection is closed after this
GC_YOUNG_ALLOCATIONS = 10_000  # see settle_heap
TURN_TIMER_SECONDS = 1e-6  # see take_turn: any timer; the shortest, so an idle worker answers at once


def _build_default_model_entry(staging: str, progress: bool) -> None:
    """The default model build, as the body of a process of its own (see ensure_default_model)."""
    from training.default_model import build_default_model

    build_default_model(staging, progress=progress)


def ensure_default_model(settings: Any, *, progress: bool = True, isolate: bool = True) -> str | None:
    """Build the embedded default model into the registry when none is promoted yet; return the current version.

    With ``isolate`` the build runs in a spawned process: training starts torch's thread pools, and
    gunicorn workers forked from a process holding them hang at exit until killed (a 10 s stop), and
    would each inherit the training's memory.
    """
    from training.artifact.check import check_model_folder
    from training.artifact.registry import open_registry

    registry = open_registry(settings.models_root, database_url=settings.database_url, check=check_model_folder)
    current = registry.current_version()
    if current is not None or not settings.build_default_model:
        return current
    try:
        from training.default_model import build_default_model
    except ImportError:
        click.echo("warning: this installation has no default model builder (training.default_model)", err=True)
        return None
    staging = settings.data_dir / ".default-model-build"
    shutil.rmtree(staging, ignore_errors=True)
    click.echo("No model is registered yet: building the embedded default model (once) ...", err=True)
    if isolate:
        import multiprocessing

        builder = multiprocessing.get_context("spawn").Process(
            target=_build_default_model_entry, args=(str(staging), progress), name="epidose-default-model")
        builder.start()
        builder.join()
        if builder.exitcode != 0:
            raise click.ClickException(f"building the default model failed (exit status {builder.exitcode}); "
                                       "the messages above say where")
        folder = staging
    else:
        built = build_default_model(staging, progress=progress)
        folder = built if isinstance(built, (str, Path)) and Path(built).is_dir() else staging
    version = registry.add(Path(folder), {"source": "embedded default model (synthetic cohort)"})
    registry.promote(version)
    shutil.rmtree(staging, ignore_errors=True)
    click.echo(f"default model registered as {version} under {settings.models_root}", err=True)
    return version


@click.command()
@click.option("--host", default=None, help="Interface to bind (default EPIDOSE_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default EPIDOSE_PORT or 8080).")
@click.option("--workers", type=int, default=None, help="gunicorn worker processes (default: one per CPU core).")
@click.option("--worker-class", type=click.Choice(("gevent", "gthread", "sync")), default=None,
              help="gunicorn worker type (default EPIDOSE_WORKER_CLASS or gevent).")
def serve(host: str | None, port: int | None, workers: int | None, worker_class: str | None) -> None:
    """Run the CDS Hooks service under gunicorn (gevent workers: slow clients cannot hold a worker)."""
    from gunicorn.app.base import BaseApplication

    from plugin.metrics import multiprocess_folder, worker_exited
    from plugin.settings import Settings

    overrides = {k: v for k, v in (("host", host), ("port", port), ("workers", workers),
                                   ("worker_class", worker_class)) if v is not None}
    settings = Settings.from_env(None, **overrides)
    from plugin.store import load_hash_key
    from plugin.trust import startup_notices  # not plugin.security: see plugin.trust

    for level, line in startup_notices(settings):  # here once, not once per worker
        warning = level >= logging.WARNING
        click.secho(f"{'warning' if warning else 'info'}: {line}", fg="red" if warning else None, bold=warning, err=True)

    refuse_busy_port(settings.host, settings.port)  # before minutes of a first start, not after
    load_hash_key(settings)  # create the patient-hash key once, before the workers start
    from training.database import DatabaseUnavailable

    try:
        version = ensure_default_model(settings)
    except DatabaseUnavailable as error:
        click.echo(f"error: {error.message}: the service starts, refuses cards with 503 and recovers when it "
                   "answers", err=True)
        version = "unknown"
    if version is None:
        click.echo("warning: no model is registered; cards will fail with 503 until one is promoted", err=True)
    count = settings.workers or os.cpu_count() or 1

    class Application(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{settings.host}:{settings.port}")
            self.cfg.set("workers", count)
            # A sync worker is held by one client for as long as it takes to send its request: two
            # clients dripping a header line every 2 s starve two workers. gevent reads each
            # connection in its own greenlet, so a slow client holds only a socket; gthread is a
            # middle ground (a thread per client once its first byte arrives).
            self.cfg.set("worker_class", settings.worker_class)
            if settings.worker_class == "gevent":
                self.cfg.set("worker_connections", SERVE_WORKER_CONNECTIONS)
                self.cfg.set("post_request", lambda _worker, _request, _environ, _response: take_turn())
            elif settings.worker_class == "gthread":
                self.cfg.set("threads", SERVE_THREADS)
            self.cfg.set("keepalive", SERVE_KEEPALIVE_SECONDS)
            self.cfg.set("timeout", 30)
            self.cfg.set("control_socket_disable", True)  # no management socket left open by default
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("accesslog", None)  # access lines would carry URLs with ids
            self.cfg.set("errorlog", "-")
            self.cfg.set("child_exit", lambda _server, worker: worker_exited(worker.pid))
            self.cfg.set("post_worker_init", lambda _worker: settle_heap())

        def load(self) -> Any:
            from plugin import create_app

            return create_app(settings, announce=False)

    click.echo(f"epidose serving on http://{settings.host}:{settings.port} with {count} {settings.worker_class} "
               "worker(s)", err=True)
    with multiprocess_folder():  # one /metrics for all workers, whichever answers the scrape
        Application().run()


def settle_heap() -> None:
    """A worker's garbage-collector settings once the app is loaded (also applied by bench/request_cpu.py).

    What the worker holds then (modules, torch, the model: ~200,000 objects) leaves the collector's
    view: each full collection otherwise walked all of it, a pause of about 300 ms inside some call
    (0.4 ms frozen). And a young collection waits for GC_YOUNG_ALLOCATIONS net allocations instead of
    700, so the parsed body of a call (a few thousand dicts and lists) is freed by reference counting
    before one runs, instead of being scanned and promoted mid-call (about 0.05 ms a call).
    What a first call would load lazily is loaded first, and frozen with the rest: a worker's first
    card took 0.58 s of CPU, 3 ms after.
    """
    from plugin.decide import load_what_the_first_call_would

    load_what_the_first_call_would()
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_ALLOCATIONS, older, oldest)


def take_turn() -> None:
    """After each answer, let the worker's other connections go first (gevent workers).

    A gevent worker reads a kept-alive connection's next request without yielding when it has already
    arrived, so a client that sends its next request at once (or pipelines them) is served again and
    again while the worker's other connections wait. Yielding with ``gevent.sleep(0)`` is not enough:
    that queues a callback, and gevent runs 50 callbacks (50 answers here) before it looks for sockets
    with data again. A timer's wait is ended only after that look, so every connection with a request
    waiting gets its turn. At 8 connections on 2 workers the p99 was 160-190 ms with no yield, 40-90 ms
    with ``sleep(0)`` and 19-24 ms with the timer (bench/RESULTS.md).
    """
    import gevent  # imported in the worker, after gunicorn's monkey-patching

    gevent.sleep(TURN_TIMER_SECONDS)


def refuse_busy_port(host: str, port: int) -> None:
    """Stop with a plain message when the address is taken, instead of gunicorn's retries and raw errors."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds: TIME_WAIT is not busy
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise click.ClickException(f"{host}:{port} is already in use (another epidose?): use --port to choose "
                                           "another (or EPIDOSE_PORT)") from None
            raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror}") from None
