"""The `postgres` dependency: an async connection pool whose health is probed.

psycopg_pool already replaces broken connections; what it cannot do is tell the health
check that the database is gone. A periodic `SELECT 1` does, both ways: NOT_SERVING while
PostgreSQL is unreachable, SERVING again as soon as it answers, with no restart.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from meshkit.health import Readiness

logger = logging.getLogger(__name__)


class PostgresPool:
    name = "postgres"

    def __init__(
        self,
        conninfo: str,
        min_size: int,
        max_size: int,
        check_interval_seconds: float,
    ) -> None:
        self._check_interval_seconds = check_interval_seconds
        self.pool = AsyncConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"connect_timeout": 3, "application_name": "weather-mesh-reporting"},
        )

    async def maintain(self, readiness: Readiness) -> None:
        await self.pool.open(wait=False)
        while True:
            up = await self._probe()
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

    async def close(self) -> None:
        await self.pool.close()
