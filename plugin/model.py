"""The model in service: loaded at worker start, swapped when the registry promotes a new version.

A worker checks the registry's ``current`` pointer at most every ``model_check_seconds``; a new version
is loaded beside the old one and replaces it with one reference assignment, so requests in flight
finish on the model they started with and none is dropped. An artifact that fails to load (wrong
feature schema, corrupt files) is refused and the previous model keeps serving; a worker that starts
while the pointer names such an artifact loads the newest earlier promoted version that works, and
``last_error`` (shown by ``/readyz``) says why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


class InferenceModel(Protocol):
    """What the service needs from ``training.inference.InferenceModel``.

    ``coverage`` may raise AttributeError (no coverage statistics: the choice cannot be called clear);
    ``score_kind`` and ``confidence_thresholds`` default to "q" and that kind's defaults when absent.
    """

    version: str

    def model_input(self, values: Any, observed: Any) -> Any: ...

    def choose(self, model_input: Any, allowed_mask: Any) -> tuple[int, Any, int]: ...

    def coverage(self, model_input: Any) -> Any: ...


class Registry(Protocol):
    """What the service needs from ``training.artifact.registry.ModelRegistry``."""

    def current_version(self) -> str | None: ...

    def current_path(self) -> Path | None: ...


def default_registry(settings: Any, database: Any = None) -> Registry:
    """The registry at EPIDOSE_MODEL_DIR; its pointer in the shared database when that is PostgreSQL."""
    from training.artifact.registry import DatabasePointer, ModelRegistry
    from training.database import PostgresDatabase

    pointer = DatabasePointer(database) if isinstance(database, PostgresDatabase) else None
    registry: Registry = ModelRegistry(settings.models_root, pointer=pointer)
    return registry


def default_loader(path: Path) -> InferenceModel:
    from training.inference import load_inference_model

    model: InferenceModel = load_inference_model(path)
    return model


class ModelHolder:
    """The current model of this worker, with a cheap periodic check for a newer promoted version."""

    def __init__(self, registry: Registry, loader: Callable[[Path], InferenceModel] = default_loader,
                 check_seconds: float = 2.0) -> None:
        self.registry = registry
        self.loader = loader
        self.check_seconds = check_seconds
        self._model: InferenceModel | None = None
        self._path: Path | None = None
        self._version: str | None = None  # the registry's name for the loaded version
        self._refused: str | None = None  # version that failed to load: not retried until the pointer moves
        self._next_check = 0.0
        self._lock = threading.Lock()
        self.last_error: str | None = None

    @property
    def model(self) -> InferenceModel | None:
        """The model to use for this request (refreshing from the registry when due)."""
        if time.monotonic() >= self._next_check:
            self.refresh()
        return self._model

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def registry_version(self) -> str | None:
        return self._version

    def refresh(self) -> bool:
        """Load the registry's current version if it differs from ours; True when a new model was loaded."""
        if not self._lock.acquire(blocking=False):
            return False  # another thread is loading; keep serving the current model
        try:
            self._next_check = time.monotonic() + self.check_seconds
            try:
                version = self.registry.current_version()
            except Exception as error:  # a broken pointer must not take the service down
                self.last_error = f"registry unreadable: {type(error).__name__}"
                log.warning("model registry unreadable: %s", error)
                return False
            current = self._version
            if version is None or version == current or version == self._refused:
                return False
            path = self.registry.current_path()
            if path is None:
                return False
            try:
                model = self.loader(Path(path))
            except Exception as error:
                self._refused = version
                self.last_error = f"model {version} refused: {error}"
                log.error("model %s refused, still serving %s: %s", version, current, error)
                if self._model is None:
                    self._load_last_good(version)
                return False
            self._model, self._path, self._version = model, Path(path), version
            self._refused, self.last_error = None, None
            log.info("serving model %s (registry version %s)", model.version, version)
            return True
        finally:
            self._lock.release()

    def _load_last_good(self, refused: str) -> None:
        """A worker starting while the pointer names a broken model serves the newest earlier one that loads."""
        stack = getattr(self.registry, "promotion_stack", None)
        path_of = getattr(self.registry, "path_of", None)
        if stack is None or path_of is None:
            return
        try:
            earlier = [v for v in reversed(stack()) if v != refused]
        except Exception:  # an unreadable history leaves the worker without a model, as before
            return
        for version in earlier:
            try:
                path = Path(path_of(version))
                model = self.loader(path)
            except Exception:  # noqa: S112 - try the next older version
                continue
            self._model, self._path, self._version = model, path, version
            self.last_error = f"{self.last_error}; serving the last good version {version} instead"
            log.warning("serving the last good model %s while %s is refused", version, refused)
            return
