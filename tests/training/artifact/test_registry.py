"""The model registry: atomic versions, pointer swaps, rollback and pruning."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.artifact.registry import ModelRegistry, RegistryError


def _artifact(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / "src" / name
    folder.mkdir(parents=True)
    (folder / "weights.json").write_text(f'{{"name": "{name}"}}', encoding="utf-8")
    return folder


def test_add_copies_without_promoting(tmp_path: Path) -> None:
    """Adding a version stores a full copy and leaves the current pointer untouched."""
    registry = ModelRegistry(tmp_path / "reg")
    version = registry.add(_artifact(tmp_path, "a"), {"steps": 3})
    assert registry.current_version() is None
    assert (registry.path_of(version) / "weights.json").read_text(encoding="utf-8") == '{"name": "a"}'
    assert registry.versions()[0].metadata == {"steps": 3}
    assert not [p for p in registry.root.iterdir() if p.name.startswith(".incoming-")]


def test_promote_and_rollback_follow_the_promotion_log(tmp_path: Path) -> None:
    """Rollback returns to the previously promoted version, twice in a row if asked."""
    registry = ModelRegistry(tmp_path / "reg")
    first, second, third = (registry.add(_artifact(tmp_path, n)) for n in "abc")
    for version in (first, second, third):
        registry.promote(version)
    assert registry.current_path() == registry.versions_dir / third
    assert registry.rollback() == second
    assert registry.rollback() == first
    assert registry.current_version() == first
    with pytest.raises(RegistryError):
        registry.rollback()


def test_promote_unknown_version_is_refused(tmp_path: Path) -> None:
    """Promoting a version that is not stored raises and keeps the pointer."""
    registry = ModelRegistry(tmp_path / "reg")
    registry.promote(registry.add(_artifact(tmp_path, "a")))
    with pytest.raises(RegistryError):
        registry.promote("v0099")
    with pytest.raises(RegistryError):
        registry.promote("../escape")
    assert registry.current_version() == "v0001"


def test_pruning_keeps_current_and_previous(tmp_path: Path) -> None:
    """Beyond ``keep`` the oldest versions go, never the current, the previous or the newest one."""
    registry = ModelRegistry(tmp_path / "reg", keep=2)
    first = registry.add(_artifact(tmp_path, "a"))
    registry.promote(first)
    second = registry.add(_artifact(tmp_path, "b"))
    registry.promote(second)
    registry.add(_artifact(tmp_path, "c"))
    fourth = registry.add(_artifact(tmp_path, "d"))
    assert [v.version for v in registry.versions()] == [first, second, fourth]
    registry.promote(fourth)
    names = [v.version for v in registry.versions()]
    assert names == [second, fourth]
    # Names are never reused after pruning.
    assert registry.add(_artifact(tmp_path, "e")) == "v0005"
