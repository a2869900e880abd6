"""Real infrastructure for integration tests: nats-server and PostgreSQL on free ports.

The fixtures are the same launchers `make up` uses (`devmesh`), so a test that passes
here exercises the configuration developers run. Each server logs to a file in the
test's temporary directory; a failing start names that file.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devmesh.nats import NatsServer
from devmesh.ports import free_port
from devmesh.postgres import UNSAFE_FAST_SETTINGS, PostgresServer

# The PostgreSQL directory must be enterable by the unprivileged user postgres runs as
# when the tests run as root; pytest's own tmp dirs are 0700, so we make our own.
TRAVERSABLE_MODE = 0o711


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server with JetStream (file store, fsync always) for one test.

    `.url`, `.port`; `.stop()` then `.start()` restarts it on the same port and store.
    """
    server = NatsServer(
        port=free_port(),
        monitor_port=free_port(),
        store_dir=tmp_path / "nats",
        log_path=tmp_path / "nats.log",
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session (`.dsn`, `.port`, `.stop()`, `.start()`).

    Durability settings are off: it is thrown away at the end. A test that stops it
    must start it again.
    """
    base_dir = Path(tempfile.mkdtemp(prefix="weather-mesh-pg-"))
    base_dir.chmod(TRAVERSABLE_MODE)
    server = PostgresServer(
        port=free_port(),
        data_dir=base_dir / "data",
        settings=UNSAFE_FAST_SETTINGS,
        log_path=base_dir / "postgres.log",
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


@pytest.fixture
def fresh_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The DSN of an empty database `test_<hex>` made for this test and dropped after it."""
    name = f"test_{uuid.uuid4().hex}"
    dsn = postgres_server.create_database(name)
    yield dsn
    postgres_server.drop_database(name)
