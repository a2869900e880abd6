"""The migration runner against a real PostgreSQL: once, in order, and race-free."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import psycopg
import pytest

from services.reporting.migrator import (
    Migration,
    MigrationError,
    migrate,
    packaged_migrations,
    parse_migrations,
)

TOY = [
    ("0001_counter.sql", "CREATE TABLE counter (n integer); INSERT INTO counter VALUES (1);"),
    ("0002_bump.sql", "UPDATE counter SET n = n + 1;"),
]


async def _migrate(dsn: str, migrations: list[Migration]) -> list[int]:
    async with await psycopg.AsyncConnection.connect(dsn) as connection:
        return await migrate(connection, migrations)


async def _counter(dsn: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn) as connection:
        cursor = await connection.execute("SELECT n FROM counter")
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])


async def test_migrations_apply_once_and_record_their_versions(fresh_database: str) -> None:
    migrations = parse_migrations(TOY)
    assert await _migrate(fresh_database, migrations) == [1, 2]
    assert await _migrate(fresh_database, migrations) == []
    assert await _counter(fresh_database) == 2


async def test_a_new_migration_is_applied_after_the_old_ones(fresh_database: str) -> None:
    await _migrate(fresh_database, parse_migrations(TOY[:1]))
    assert await _migrate(fresh_database, parse_migrations(TOY)) == [2]
    assert await _counter(fresh_database) == 2


async def test_replicas_starting_together_apply_each_migration_once(fresh_database: str) -> None:
    migrations = parse_migrations(TOY)
    results = await asyncio.gather(*(_migrate(fresh_database, migrations) for _ in range(4)))
    assert sorted(results) == [[], [], [], [1, 2]]
    assert await _counter(fresh_database) == 2


async def test_an_edited_migration_is_refused_and_nothing_runs(fresh_database: str) -> None:
    await _migrate(fresh_database, parse_migrations(TOY[:1]))
    edited = [("0001_counter.sql", TOY[0][1] + " -- edited"), TOY[1]]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await _migrate(fresh_database, parse_migrations(edited))
    assert await _counter(fresh_database) == 1


async def test_a_failing_migration_leaves_no_trace(fresh_database: str) -> None:
    broken = [*TOY, ("0003_broken.sql", "ALTER TABLE missing ADD COLUMN x int;")]
    with pytest.raises(psycopg.errors.UndefinedTable):
        await _migrate(fresh_database, parse_migrations(broken))
    assert await _migrate(fresh_database, parse_migrations(TOY)) == [1, 2]


async def test_shipped_migrations_apply_on_an_empty_database(fresh_database: str) -> None:
    versions = await _migrate(fresh_database, packaged_migrations())
    assert versions == [m.version for m in packaged_migrations()]
    async with await psycopg.AsyncConnection.connect(fresh_database) as connection:
        cursor = await connection.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'jobs' ORDER BY indexname"
        )
        indexes = [row[0] for row in await cursor.fetchall()]
    assert "jobs_submitted_at_id_idx" in indexes
    assert "jobs_label_submitted_at_id_idx" in indexes
    assert "jobs_state_submitted_at_id_idx" in indexes


def test_the_migrate_command_migrates_the_configured_database_and_exits(
    fresh_database: str,
) -> None:
    """What a deployment's migrations Job runs: `python3 -m services.reporting.migrator`."""
    command = [sys.executable, "-m", "services.reporting.migrator"]
    environment = {**os.environ, "REPORTING_DATABASE_URL": fresh_database}
    first = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=120, check=False
    )
    assert first.returncode == 0, first.stderr
    applied = len(packaged_migrations())
    assert f"{applied} migrations applied now" in first.stdout
    again = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stderr
    assert "0 migrations applied now" in again.stdout
    assert fresh_database not in first.stdout + first.stderr  # the URL stays out of the log
