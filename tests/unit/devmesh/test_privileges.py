from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devmesh.privileges import PrivilegeError, ServiceUser, can_traverse, ensure_reachable

# An account that owns nothing here and belongs to no group of ours.
STRANGER = ServiceUser(name="stranger", uid=4_000_000, gid=4_000_000)


def test_a_stranger_needs_the_other_execute_bit(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o750)
    opened = tmp_path / "opened"
    opened.mkdir(mode=0o711)
    closed.chmod(0o750)
    assert not can_traverse(closed, STRANGER)
    assert can_traverse(opened, STRANGER)


def test_the_owner_uses_the_owner_bits(tmp_path: Path) -> None:
    me = ServiceUser(name="me", uid=os.geteuid(), gid=os.getegid())
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    assert can_traverse(private, me)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """Our own traversable directory (pytest's tmp dirs sit under a 0700 one)."""
    path = Path(tempfile.mkdtemp(prefix="weather-mesh-unit-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path)


def test_the_blocking_ancestor_is_named_and_not_changed(open_dir: Path) -> None:
    locked = open_dir / "locked"
    locked.mkdir(mode=0o700)
    with pytest.raises(PrivilegeError, match=f"cannot enter {locked} "):
        ensure_reachable(locked / "pg" / "data", STRANGER)
    assert locked.stat().st_mode & 0o777 == 0o700


def test_a_fully_traversable_path_passes(open_dir: Path) -> None:
    ensure_reachable(open_dir / "not-yet-created" / "data", STRANGER)
