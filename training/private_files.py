"""Files and folders readable by the service's user only (0600 / 0700), whatever the process umask.

The store, the patient-hash key, the raw FHIR pulled for retraining and the model folders all hold
data about patients or what was learned from them. A umask can only remove permission bits, so every
path is also ``chmod``-ed to the exact mode after it is created: a permissive umask (0000) cannot widen
it and a restrictive one cannot leave the owner without access.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

PRIVATE_DIR: Final = 0o700
PRIVATE_FILE: Final = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents as 0700 folders.

    Folders that already exist are left as they are: a configured path may sit in a shared folder
    (``EPIDOSE_DATABASE=/srv/shared/epidose.sqlite3``) whose mode is not the service's to change.
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            pass
        else:
            os.chmod(folder, PRIVATE_DIR)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if absent, and set it to 0600 either way (for files another library opens)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE)
    try:
        os.fchmod(descriptor, PRIVATE_FILE)
    finally:
        os.close(descriptor)
    return Path(path)


def open_private(path: Path, mode: str = "a", **options: Any) -> IO[Any]:
    """``open(path, mode)`` for writing or appending, the file created 0600 (and kept so)."""
    flags = os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    flags |= os.O_RDWR if "+" in mode else os.O_WRONLY
    descriptor = os.open(path, flags, PRIVATE_FILE)
    os.fchmod(descriptor, PRIVATE_FILE)
    return os.fdopen(descriptor, mode, **options)


def make_tree_private(root: Path) -> None:
    """Every folder under ``root`` (itself included) 0700, every file 0600 (after a copy kept other modes)."""
    os.chmod(root, PRIVATE_DIR)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), PRIVATE_DIR)
        for name in files:
            os.chmod(os.path.join(folder, name), PRIVATE_FILE)


@contextlib.contextmanager
def locked_file(path: Path, *, wait: bool = True) -> Iterator[IO[str] | None]:
    """An exclusive fcntl lock on the 0600 file ``path`` for the block, released when it ends.

    ``wait=False`` does not queue: the block gets None when another process holds the lock. The
    handle (open for reading and appending) lets a holder leave a note, such as its pid.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_private(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def atomic_write(path: Path, data: bytes, *, replace: bool = True) -> bool:
    """Write ``data`` to ``path`` whole or not at all: a private temporary file beside it, fsync'd, then moved.

    ``replace=True`` swaps it over any existing file (``os.replace``); ``replace=False`` creates the file
    only if it does not exist yet (``os.link``) and returns False when another writer got there first,
    so racing processes all end up reading the one complete winner. The folder is fsync'd after.
    """
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), PRIVATE_FILE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)
            except FileExistsError:
                return False
            finally:
                os.unlink(temporary)
        fsync_dir(path.parent)
        return True
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in the folder ``path`` durable."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
