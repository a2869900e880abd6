"""Saved members are joined into one graph only when their names differ."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.architecture import build_member
from training.assemble import load_members


def test_two_members_of_one_seed_are_refused(tmp_path: Path) -> None:
    first, second = tmp_path / "a.keras", tmp_path / "b.keras"
    build_member(5, 4).save(first)
    build_member(5, 4).save(second)
    with pytest.raises(ValueError, match="member_seed5"):
        load_members([first, second])


def test_members_of_different_seeds_load_in_order(tmp_path: Path) -> None:
    paths = [tmp_path / f"{seed}.keras" for seed in (8, 6)]
    for seed, path in zip((8, 6), paths, strict=True):
        build_member(seed, 4).save(path)
    assert [member.name for member in load_members(paths)] == ["member_seed8", "member_seed6"]
