"""The one atomic write and the one file lock: private files, whole or absent, one holder at a time."""

from __future__ import annotations

import os
from pathlib import Path

from training.private_files import atomic_write, locked_file


def test_atomic_write_replaces_whole_and_private(tmp_path: Path) -> None:
    """A replace leaves the new content only, 0600, and no temporary file beside it."""
    path = tmp_path / "current"
    assert atomic_write(path, b"v0001\n") and atomic_write(path, b"v0002\n")
    assert path.read_bytes() == b"v0002\n" and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["current"]


def test_create_only_keeps_the_first_writer(tmp_path: Path) -> None:
    """With replace=False the second writer is told it lost and the first content stays."""
    path = tmp_path / "hash.key"
    assert atomic_write(path, b"first", replace=False) is True
    assert atomic_write(path, b"second", replace=False) is False
    assert path.read_bytes() == b"first" and len(list(tmp_path.iterdir())) == 1


def test_a_held_lock_is_refused_without_waiting(tmp_path: Path) -> None:
    """While one process holds the lock, another asking not to wait gets None; after release it gets it."""
    path = tmp_path / "run.lock"
    with locked_file(path):
        pid = os.fork()
        if pid == 0:  # the child: a second process asking for the held lock
            with locked_file(path, wait=False) as handle:
                os._exit(0 if handle is None else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    with locked_file(path, wait=False) as handle:
        assert handle is not None
    assert path.stat().st_mode & 0o777 == 0o600
