"""A small, strict migration runner: versioned `.sql` files, each applied exactly once.

Why not a library: the schema is a handful of files, and the guarantees we need fit in one
transaction. Every run takes a transaction-scoped advisory lock first, so replicas starting
together apply the migrations once between them (the second waits, then finds them done).
Applied versions are recorded with a checksum in `schema_migrations`; a shipped migration
that was edited afterwards is refused instead of silently diverging from the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from psycopg import AsyncConnection

logger = logging.getLogger(__name__)

MIGRATIONS_PACKAGE = "services.reporting.migrations"
# Any fixed 64-bit number unique to this purpose in the database; "weather-migrations" in ASCII.
ADVISORY_LOCK_KEY = 0x7765617468657247
FILE_NAME = re.compile(r"^(?P<version>\d+)_(?P<name>[a-z0-9_]+)\.sql$")

CREATE_LEDGER = b"""
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migrations on disk do not fit the database (or each other)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def parse_migrations(files: Iterable[tuple[str, str]]) -> list[Migration]:
    """(file name, SQL) pairs → migrations in version order; other files are ignored.

    Two files with one version are an error: which one ran would depend on the file system.
    """
    by_version: dict[int, Migration] = {}
    for file_name, text in files:
        match = FILE_NAME.fullmatch(file_name)
        if match is None:
            continue
        version = int(match["version"])
        if version in by_version:
            raise MigrationError(f"two migrations have version {version}: {file_name}")
        by_version[version] = Migration(version, match["name"], text)
    return [by_version[version] for version in sorted(by_version)]


def packaged_migrations() -> list[Migration]:
    """The migrations shipped with the service (`services/reporting/migrations/*.sql`)."""
    files = resources.files(MIGRATIONS_PACKAGE).iterdir()
    return parse_migrations(
        (entry.name, entry.read_text(encoding="utf-8")) for entry in files if entry.is_file()
    )


async def migrate(connection: AsyncConnection[Any], migrations: Sequence[Migration]) -> list[int]:
    """Apply the migrations the database lacks, in one transaction; return their versions.

    The connection must not be inside a transaction. On any error nothing is applied.
    """
    applied_now: list[int] = []
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        await connection.execute(CREATE_LEDGER)
        cursor = await connection.execute("SELECT version, checksum FROM schema_migrations")
        applied = {int(version): str(checksum) for version, checksum in await cursor.fetchall()}
        for migration in migrations:
            recorded = applied.get(migration.version)
            if recorded is not None:
                if recorded != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version} ({migration.name}) changed after it "
                        "was applied; add a new migration instead of editing a shipped one"
                    )
                continue
            logger.info("applying migration %d (%s)", migration.version, migration.name)
            await connection.execute(migration.sql.encode("utf-8"))
            await connection.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
            applied_now.append(migration.version)
    return applied_now


async def migrate_database(database_url: str) -> list[int]:
    """Apply the shipped migrations to the database at `database_url`; the versions applied."""
    async with await AsyncConnection.connect(database_url) as connection:
        return await migrate(connection, packaged_migrations())


def main() -> int:
    """`python -m services.reporting.migrator`: migrate the database of `REPORTING_*` settings
    and exit (a deployment's migrations Job; the service itself also migrates at start)."""
    from meshkit.logging import configure_logging
    from services.reporting.settings import ReportingSettings

    settings = ReportingSettings()
    configure_logging("reporting-migrate", settings.log_level)
    url = settings.migration_database_url or settings.database_url
    applied = asyncio.run(migrate_database(url.get_secret_value()))
    logger.info("database migrated: %d migrations applied now", len(applied))
    return 0


if __name__ == "__main__":
    sys.exit(main())
