"""Files and folders readable by the service's user only (0600 / 0700), whatever the process umask.

The store, the patient-hash key, the raw FHIR pulled for retraining and the model folders all hold
data about patients or what was learned from them. A umask can only remove permission bits, so every
path is also ``chmod``-ed to the exact mode after it is created: a permissive umask (0000) cannot widen
it and a restrictive one cannot leave the owner without access.
"""

from __future__ import annotations

import os
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
