"""Least privilege in PostgreSQL, as `make up` and the fixtures run it: passwords (SCRAM)
for every connection, the migration role owns the schema, reporting's runtime role may
read, write and (for the retention purge) delete rows but change no schema."""

from __future__ import annotations

import psycopg
import pytest

from devmesh.postgres import PostgresServer
from services.reporting.migrator import migrate_database

RUNTIME_ROLE_LOOKUP = "SELECT id FROM jobs LIMIT 1"


async def test_the_runtime_role_cannot_drop_a_table(
    postgres_server: PostgresServer, fresh_database: str
) -> None:
    assert await migrate_database(fresh_database)  # as the migration role, which owns it
    name = fresh_database.rsplit("/", 1)[1]
    runtime = postgres_server.runtime_dsn_for(name)
    async with await psycopg.AsyncConnection.connect(runtime, autocommit=True) as connection:
        await connection.execute(RUNTIME_ROLE_LOOKUP)  # reading rows is its job
        for statement in (
            "DROP TABLE jobs",
            "TRUNCATE jobs",
            "CREATE TABLE intruder (id int)",
            "ALTER TABLE jobs ADD COLUMN intruder int",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await connection.execute(statement)
    async with await psycopg.AsyncConnection.connect(fresh_database) as owner:
        await owner.execute(RUNTIME_ROLE_LOOKUP)  # the table is still there


def test_a_connection_without_the_password_is_refused(postgres_server: PostgresServer) -> None:
    display = postgres_server.display_dsn("postgres")
    assert postgres_server.password(postgres_server.superuser) not in display
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(display, connect_timeout=5)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(display, password="not-the-password", connect_timeout=5)
