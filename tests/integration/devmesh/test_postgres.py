from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devmesh.ports import free_port
from devmesh.postgres import UNSAFE_FAST_SETTINGS, PostgresServer
from devmesh.privileges import PrivilegeError


@pytest.fixture
def own_dir() -> Iterator[Path]:
    """A directory we create and open for traversal, as the postgres user needs."""
    path = Path(tempfile.mkdtemp(prefix="weather-mesh-pgtest-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_postgres_answers_queries_in_the_weather_database(
    postgres_server: PostgresServer,
) -> None:
    assert postgres_server.dsn.endswith(f"@127.0.0.1:{postgres_server.port}/weather")
    with psycopg.connect(postgres_server.dsn) as connection:
        row = connection.execute("SELECT current_database(), 1 + 1").fetchone()
    assert row == ("weather", 2)


def test_fresh_database_is_empty_and_writable(fresh_database: str) -> None:
    with psycopg.connect(fresh_database) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        connection.execute("CREATE TABLE probe (id int PRIMARY KEY)")
    assert tables == (0,)


def test_restart_on_the_same_data_dir_keeps_data_and_reuses_the_cluster(own_dir: Path) -> None:
    server = PostgresServer(
        port=free_port(),
        data_dir=own_dir / "data",
        settings=UNSAFE_FAST_SETTINGS,
        log_path=own_dir / "postgres.log",
    )
    try:
        server.start()
        with psycopg.connect(server.dsn, autocommit=True) as connection:
            connection.execute("CREATE TABLE kept (note text)")
            connection.execute("INSERT INTO kept VALUES ('before restart')")
        first_pid = server.process.pid

        server.stop()
        server.start()

        assert server.process.pid != first_pid
        with psycopg.connect(server.dsn) as connection:
            assert connection.execute("SELECT note FROM kept").fetchall() == [("before restart",)]
        if os.geteuid() == 0:
            assert (own_dir / "data").stat().st_uid != 0, "postgres must not run as root"
    finally:
        server.stop()
    assert not server.process.running


@pytest.mark.skipif(os.geteuid() != 0, reason="the service user exists only when run as root")
def test_unreachable_parent_directory_is_named_and_left_untouched(own_dir: Path) -> None:
    locked = own_dir / "locked"
    locked.mkdir(mode=0o700)
    server = PostgresServer(port=free_port(), data_dir=locked / "data")

    with pytest.raises(PrivilegeError, match=str(locked)):
        server.prepare()

    assert locked.stat().st_mode & 0o777 == 0o700
