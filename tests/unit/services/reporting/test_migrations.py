"""The migration runner's file handling, and the shipped migrations' naming."""

from __future__ import annotations

import pytest

from services.reporting.migrator import MigrationError, packaged_migrations, parse_migrations


def test_migrations_are_ordered_by_version_not_by_name() -> None:
    migrations = parse_migrations(
        [("0010_later.sql", "SELECT 10"), ("0002_early.sql", "SELECT 2"), ("README.md", "")]
    )
    assert [(m.version, m.name) for m in migrations] == [(2, "early"), (10, "later")]


def test_two_files_with_one_version_are_refused() -> None:
    with pytest.raises(MigrationError, match="version 1"):
        parse_migrations([("0001_a.sql", "SELECT 1"), ("001_b.sql", "SELECT 1")])


def test_checksum_follows_the_sql() -> None:
    first, second = parse_migrations([("1_a.sql", "SELECT 1"), ("2_a.sql", "SELECT 2")])
    assert first.checksum != second.checksum


def test_shipped_migrations_are_found_and_versioned_from_one() -> None:
    migrations = packaged_migrations()
    assert migrations, "no migrations shipped"
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert "CREATE TABLE jobs" in migrations[0].sql
