"""Versioned model folders and the ``current`` pointer the service follows.

Layout under ``root``::

    versions/<version>/      one artifact folder per version, plus ``registry.json`` (metadata)
    current                  the promoted version's name (one line), swapped with ``os.replace``
    promotions.jsonl         every promote / rollback, in order (the rollback history)
    .lock                    fcntl lock serialising writers (the CLI, the scheduler)

With PostgreSQL (``EPIDOSE_DATABASE_URL``) the pointer, the promotion log and the writers' lock move to
the database (:class:`DatabasePointer`), so every host sharing the model folder promotes and rolls back
together; the folders stay on the shared model storage.

Nothing partial is ever visible: a new version is copied into a hidden temporary folder inside
``root`` and renamed into ``versions/`` in one step; the pointer is written to a temporary file and
``os.replace``-d over ``current``. Readers (the service) need no lock: they read ``current`` and open
the folder it names, which is never modified after it appears.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fhir_mapping.errors import EpidoseError

if TYPE_CHECKING:
    from training.database import Database

from training.private_files import (
    atomic_write,
    fsync_dir,
    locked_file,
    make_tree_private,
    open_private,
    private_dir,
)

METADATA_FILE = "registry.json"
_VERSION_PATTERN = re.compile(r"^v(\d{4,})$")


class RegistryError(EpidoseError):
    """A registry operation that cannot be carried out (unknown version, nothing to roll back to)."""


@dataclass(frozen=True)
class ModelVersion:
    """One stored model version."""

    version: str
    path: Path
    created: str
    metadata: dict[str, Any] = field(default_factory=dict)
    current: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": str(self.path),
            "created": self.created,
            "current": self.current,
            "metadata": self.metadata,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _version_number(name: str) -> int | None:
    match = _VERSION_PATTERN.match(name)
    return int(match.group(1)) if match else None


class PointerStore(Protocol):
    """Where the current pointer and the promotion log live, and the lock writers hold."""

    def current(self) -> str | None: ...

    def history(self) -> list[dict[str, Any]]: ...

    def record(self, event: Mapping[str, Any]) -> None:
        """Point at ``event["version"]`` and log the event, as one step."""

    def locked(self) -> contextlib.AbstractContextManager[None]: ...


class FilePointer:
    """The pointer as a file swapped with ``os.replace``, the log as JSON lines, the lock an fcntl lock."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "current"
        self.log = root / "promotions.jsonl"

    def current(self) -> str | None:
        try:
            name = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return name or None

    def history(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines() if line.strip()]

    def record(self, event: Mapping[str, Any]) -> None:
        self._write_pointer(str(event["version"]))
        self._append_log(event)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with locked_file(self.root / ".lock"):
            yield

    def _write_pointer(self, version: str) -> None:
        atomic_write(self.path, (version + "\n").encode("utf-8"))

    def _append_log(self, event: Mapping[str, Any]) -> None:
        with open_private(self.log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(dict(event), sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


class DatabasePointer:
    """The pointer and the log as rows of the shared database, moved in one transaction; an advisory lock."""

    NAME = "current"

    def __init__(self, database: Database) -> None:
        self.database = database

    def current(self) -> str | None:
        row = self.database.query("SELECT version FROM model_pointer WHERE name = ?", (self.NAME,)).first()
        return None if row is None else str(row["version"])

    def history(self) -> list[dict[str, Any]]:
        rows = self.database.query("SELECT action, version, previous, at FROM promotions ORDER BY id").rows
        return [dict(row) for row in rows]

    def record(self, event: Mapping[str, Any]) -> None:
        with self.database.transaction() as tx:
            tx.execute("INSERT INTO model_pointer (name, version, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) "
                       "DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
                       (self.NAME, event["version"], event["at"]))
            tx.execute("INSERT INTO promotions (action, version, previous, at) VALUES (?, ?, ?, ?)",
                       (event["action"], event["version"], event.get("previous"), event["at"]))

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return self.database.lock("model-registry")


class ModelRegistry:
    """Model versions on disk, a current pointer, a promotion log and pruning to the last ``keep``."""

    def __init__(self, root: Path, keep: int = 5, check: Callable[[Path], Any] | None = None, *,
                 pointer: PointerStore | None = None) -> None:
        """``check`` (e.g. :func:`training.artifact.check.check_model_folder`) must pass on a folder before
        it is added and before the pointer moves to it; it raises to refuse. ``pointer`` defaults to the
        file beside the versions (one host); see :class:`DatabasePointer`."""
        if keep < 2:
            raise ValueError("keep must be at least 2 (the current and the previous version)")
        self.root = Path(root)
        self.keep = keep
        self.check = check
        self.versions_dir = self.root / "versions"
        private_dir(self.root)
        private_dir(self.versions_dir)
        self.pointer_store: PointerStore = pointer if pointer is not None else FilePointer(self.root)

    # -- readers (no lock: every file they read is replaced atomically) --------------------------

    def current_version(self) -> str | None:
        """The promoted version's name, or None before the first promotion."""
        return self.pointer_store.current()

    def current_path(self) -> Path | None:
        """The promoted version's artifact folder, or None before the first promotion."""
        version = self.current_version()
        return None if version is None else self.versions_dir / version

    def path_of(self, version: str) -> Path:
        """The artifact folder of ``version``; RegistryError if it is not stored."""
        path = self.versions_dir / version
        if _version_number(version) is None or not path.is_dir():
            raise RegistryError(f"unknown model version {version!r}")
        return path

    def versions(self) -> list[ModelVersion]:
        """Every stored version, oldest first, with its metadata."""
        current = self.current_version()
        found = []
        for path in self.versions_dir.iterdir():
            number = _version_number(path.name)
            if number is None or not path.is_dir():
                continue
            try:
                meta = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
            except (FileNotFoundError, json.JSONDecodeError):
                meta = {}
            found.append(
                (
                    number,
                    ModelVersion(
                        version=path.name,
                        path=path,
                        created=str(meta.get("created", "")),
                        metadata=dict(meta.get("metadata", {})),
                        current=path.name == current,
                    ),
                )
            )
        return [version for _, version in sorted(found, key=lambda item: item[0])]

    def history(self) -> list[dict[str, Any]]:
        """The promotion log (promote and rollback events), oldest first."""
        return self.pointer_store.history()

    def promotion_stack(self) -> list[str]:
        """Promoted versions in order, with rolled-back ones removed; the last is the current one."""
        stack: list[str] = []
        for event in self.history():
            if event.get("action") == "promote":
                stack.append(str(event["version"]))
            elif event.get("action") == "rollback" and stack:
                stack.pop()
        return stack

    def previous_version(self) -> str | None:
        """The version a rollback would return to."""
        stack = self.promotion_stack()
        return stack[-2] if len(stack) >= 2 else None

    # -- writers (serialised by the pointer store's lock) ----------------------------------------

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return self.pointer_store.locked()

    def add(self, artifact_dir: Path, metadata: Mapping[str, Any] | None = None) -> str:
        """Store a copy of ``artifact_dir`` as a new version and return its name (not promoted)."""
        artifact_dir = Path(artifact_dir)
        if not artifact_dir.is_dir():
            raise RegistryError(f"artifact folder {artifact_dir} does not exist")
        self._check(artifact_dir, str(artifact_dir))
        with self._locked():
            staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root))
            try:
                target = staging / "artifact"
                shutil.copytree(artifact_dir, target)
                record = {"created": _now(), "source": str(artifact_dir), "metadata": dict(metadata or {})}
                (target / METADATA_FILE).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
                make_tree_private(target)  # copytree keeps the source's modes
                version = self._next_version()
                # One rename publishes the whole folder: readers see nothing or everything.
                os.replace(target, self.versions_dir / version)
                fsync_dir(self.versions_dir)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            self._prune()
        return version

    def promote(self, version: str) -> None:
        """Make ``version`` the current model (atomic pointer swap) and log the promotion."""
        with self._locked():
            self._check(self.path_of(version), version)
            previous = self.current_version()
            self.pointer_store.record({"action": "promote", "version": version, "previous": previous, "at": _now()})
            self._prune()

    def rollback(self) -> str:
        """Return to the previously promoted version; returns its name."""
        with self._locked():
            stack = self.promotion_stack()
            if len(stack) < 2:
                raise RegistryError("no previous promoted version to roll back to")
            target = stack[-2]
            self._check(self.path_of(target), target)
            self.pointer_store.record({"action": "rollback", "version": target, "previous": stack[-1], "at": _now()})
        return target

    # -- internals --------------------------------------------------------------------------------

    def _check(self, folder: Path, name: str) -> None:
        if self.check is None:
            return
        try:
            self.check(folder)
        except Exception as error:
            raise RegistryError(f"model {name} refused: {error}") from None

    def _next_version(self) -> str:
        numbers = [n for n in (_version_number(p.name) for p in self.versions_dir.iterdir()) if n is not None]
        # Never reuse a pruned name: a version name identifies one model forever.
        for event in self.history():
            number = _version_number(str(event.get("version", "")))
            if number is not None:
                numbers.append(number)
        return f"v{max(numbers, default=0) + 1:04d}"

    def _prune(self) -> None:
        stack = self.promotion_stack()
        protected = set(stack[-2:])
        current = self.current_version()
        if current:
            protected.add(current)
        stored = self.versions()
        if stored:
            # The newest version is a candidate that may be about to be promoted.
            protected.add(stored[-1].version)
        excess = len(stored) - self.keep
        for version in stored:
            if excess <= 0:
                break
            if version.version in protected:
                continue
            # Rename out of versions/ first so a half-deleted folder is never listed.
            doomed = self.root / f".pruned-{version.version}"
            os.replace(version.path, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
            excess -= 1


def open_registry(root: Path, keep: int = 5, database_url: str | None = None,
                  check: Callable[[Path], Any] | None = None) -> ModelRegistry:
    """The registry at ``root``, its pointer in PostgreSQL when ``database_url`` names one."""
    from training.database import is_postgres_url, shared_database

    pointer = DatabasePointer(shared_database(str(database_url))) if is_postgres_url(database_url) else None
    return ModelRegistry(root, keep, check, pointer=pointer)
