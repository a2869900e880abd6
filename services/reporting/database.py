"""The `postgres` dependency: an async connection pool, migrated, whose health is probed.

psycopg_pool already replaces broken connections; what it cannot do is tell the health
check that the database is gone. A periodic `SELECT 1` does, both ways: NOT_SERVING while
PostgreSQL is unreachable, SERVING again as soon as it answers, with no restart.

The schema is brought up to date (`setup`, the migrations) after the first successful
probe and before the dependency first reports up, so nothing reads or writes an old
schema; `ready` tells workers that moment has come.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from meshkit.health import Readiness
from services.reporting.migrator import MigrationError

logger = logging.getLogger(__name__)

PoolSetup = Callable[[AsyncConnectionPool], Awaitable[None]]


class PostgresPool:
    name = "postgres"

    def __init__(
        self,
        conninfo: str,
        min_size: int,
        max_size: int,
        check_interval_seconds: float,
        setup: PoolSetup | None = None,
        ingest_pool_size: int = 2,
        statement_timeout_seconds: float = 10.0,
    ) -> None:
        """Two pools on the same role: `pool` serves queries, `ingest_pool` writes events;
        every statement on either is cut at `statement_timeout_seconds`."""
        self._check_interval_seconds = check_interval_seconds
        self._setup = setup
        self.ready = asyncio.Event()
        self.pool = self._new_pool(conninfo, min_size, max_size, statement_timeout_seconds)
        self.ingest_pool = self._new_pool(
            conninfo, min(min_size, ingest_pool_size), ingest_pool_size, statement_timeout_seconds
        )

    @staticmethod
    def _new_pool(
        conninfo: str, min_size: int, max_size: int, statement_timeout_seconds: float
    ) -> AsyncConnectionPool:
        timeout_ms = max(1, round(statement_timeout_seconds * 1000))
        return AsyncConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            open=False,
            # A connection broken by a database restart is found and replaced when it is
            # taken from the pool, instead of failing the first query after the restart.
            check=AsyncConnectionPool.check_connection,
            kwargs={
                "connect_timeout": 3,
                "application_name": "weather-mesh-reporting",
                "options": f"-c statement_timeout={timeout_ms}",
            },
        )

    async def maintain(self, readiness: Readiness) -> None:
        await self.pool.open(wait=False)
        await self.ingest_pool.open(wait=False)
        while True:
            up = await self._probe() and await self._prepare()
            await readiness.set(self.name, up)
            await asyncio.sleep(self._check_interval_seconds)

    async def _probe(self) -> bool:
        try:
            async with self.pool.connection(timeout=self._check_interval_seconds * 2) as conn:
                await conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout, OSError) as error:
            logger.warning("PostgreSQL not reachable: %s", error)
            return False
        return True

    async def _prepare(self) -> bool:
        """Run `setup` once; until it has succeeded the database does not count as up."""
        if self.ready.is_set():
            return True
        if self._setup is not None:
            try:
                await self._setup(self.pool)
            except (psycopg.Error, PoolTimeout, OSError, MigrationError) as error:
                logger.error("PostgreSQL schema not ready: %s; retrying", error)
                return False
        self.ready.set()
        return True

    async def close(self) -> None:
        await self.ingest_pool.close()
        await self.pool.close()
