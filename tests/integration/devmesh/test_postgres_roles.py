"""Least privilege in PostgreSQL, as `make up` and the fixtures run it: passwords (SCRAM)
for every connection, the migration role owns the schema, reporting's runtime role may
read, write and (for the retention purge) delete rows but change no schema."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql

from devmesh.postgres import MIGRATION_ROLE, PostgresServer
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


async def test_the_migrations_alone_give_the_runtime_role_its_rights(
    postgres_server: PostgresServer,
) -> None:
    """As in the cluster: CloudNativePG creates the owner's database and the runtime role but
    grants no table rights (no default privileges, as `create_database` sets locally); the
    owner's migrations must, or reporting could not read or write a row there."""
    name = f"test_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_server.dsn_for("postgres"), autocommit=True) as superuser:
        superuser.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(MIGRATION_ROLE)
            )
        )
    try:
        assert await migrate_database(postgres_server.dsn_for(name, MIGRATION_ROLE))
        runtime = postgres_server.runtime_dsn_for(name)
        async with await psycopg.AsyncConnection.connect(runtime, autocommit=True) as connection:
            await connection.execute(RUNTIME_ROLE_LOOKUP)
            await connection.execute("SELECT job_id FROM job_feedback LIMIT 1")
            await connection.execute("DELETE FROM jobs WHERE false")  # the retention purge
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await connection.execute("CREATE TABLE intruder (id int)")
    finally:
        postgres_server.drop_database(name)
