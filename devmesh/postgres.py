"""A private PostgreSQL cluster on 127.0.0.1, for local runs and integration tests.

The cluster lives in its own data directory and listens on TCP loopback only (no Unix
socket, whose path length and directory would be one more thing to get wrong). Every
connection authenticates with a password (SCRAM-SHA-256). Passwords are generated on
first start into `<data_dir>-credentials/<role>` (mode 0600) and kept across restarts.

Roles, as a cluster would have them:
- `weather` (superuser): the runner's and the fixtures' own, to create databases;
- `weather_owner` (MIGRATION_ROLE): owns each database and its schema, runs migrations;
- `weather_app` (RUNTIME_ROLE): what reporting runs as: connect, and read, insert and
  update rows of the tables the owner creates (default privileges) — no DDL, no DELETE.

Started by root, it runs as the system user `weather-mesh` (postgres refuses root).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

import psycopg
from psycopg import sql

from devmesh.binaries import postgres_bin_dir
from devmesh.launcher import Launcher
from devmesh.ports import LOOPBACK
from devmesh.privileges import (
    SERVICE_USER,
    PrivilegeError,
    ServiceUser,
    current_user_is_root,
    ensure_reachable,
    ensure_service_user,
)
from devmesh.process import ManagedProcess

DEFAULT_DATABASE = "weather"
DEFAULT_SUPERUSER = "weather"
MIGRATION_ROLE = "weather_owner"
RUNTIME_ROLE = "weather_app"
RUNTIME_TABLE_RIGHTS = "SELECT, INSERT, UPDATE, DELETE"  # DELETE: the retention purge
PASSWORD_BYTES = 24
DATA_DIR_MODE = 0o700
# Durability traded for speed; for throwaway test clusters only.
UNSAFE_FAST_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class PostgresError(RuntimeError):
    """initdb failed, or the data directory is not one we can use."""


class PostgresServer(Launcher):
    """initdb once, then `start()`/`stop()` as often as needed on the same data directory."""

    name = "PostgreSQL"
    readiness = "accepting connections"
    start_timeout = 30.0
    stop_grace = 30.0

    def __init__(
        self,
        *,
        port: int,
        data_dir: Path,
        database: str = DEFAULT_DATABASE,
        superuser: str = DEFAULT_SUPERUSER,
        settings: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        bin_dir: Path | None = None,
        service_user: str = SERVICE_USER,
        host: str = LOOPBACK,
    ) -> None:
        self.host = host
        self.port = port
        self.data_dir = data_dir.absolute()
        self.database = database
        self.superuser = superuser
        self.settings = dict(settings or {})
        self.log_path = log_path
        self.bin_dir = bin_dir
        self.service_user_name = service_user

    @property
    def credentials_dir(self) -> Path:
        return self.data_dir.with_name(f"{self.data_dir.name}-credentials")

    def password(self, role: str) -> str:
        """The role's password, generated (0600 file) the first time it is asked for."""
        self.credentials_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.credentials_dir / role
        if not path.is_file():
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(secrets.token_urlsafe(PASSWORD_BYTES))
        return path.read_text(encoding="utf-8")

    @property
    def dsn(self) -> str:
        """The superuser's DSN of the default database (holds its password: a secret)."""
        return self.dsn_for(self.database)

    def dsn_for(self, database: str, role: str | None = None) -> str:
        """libpq URI of `database` as `role` (default the superuser), password included:
        pass it only where it is a secret setting (services keep it in a SecretStr)."""
        role = role or self.superuser
        password = self.password(role)  # token_urlsafe: nothing to escape in a URI
        return f"postgresql://{role}:{password}@{self.host}:{self.port}/{database}"

    def display_dsn(self, database: str | None = None, role: str | None = None) -> str:
        """The DSN without its password, for banners and logs."""
        role = role or self.superuser
        return f"postgresql://{role}@{self.host}:{self.port}/{database or self.database}"

    def _run_as(self) -> ServiceUser | None:
        return ensure_service_user(self.service_user_name) if current_user_is_root() else None

    def prepare(self) -> None:
        """initdb unless the data directory already holds a cluster; idempotent."""
        bin_dir = self.bin_dir or postgres_bin_dir()
        run_as = self._run_as()
        if (self.data_dir / "PG_VERSION").is_file():
            self._check_owner(run_as)
        else:
            self._create_data_dir(run_as)
            self._initdb(bin_dir, run_as)
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            "unix_socket_directories=",
        ]
        for name, value in self.settings.items():
            argv += ["-c", f"{name}={value}"]
        # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, exit at once.
        self._process = ManagedProcess(
            "postgres",
            argv,
            cwd=self.data_dir,
            log_path=self.log_path,
            run_as=run_as,
            stop_signal=signal.SIGINT,
        )

    def _check_owner(self, run_as: ServiceUser | None) -> None:
        if run_as is None:
            return
        ensure_reachable(self.data_dir, run_as)
        if self.data_dir.stat().st_uid != run_as.uid:
            raise PostgresError(
                f"{self.data_dir} holds a cluster not owned by {run_as.name!r}, the user "
                "PostgreSQL runs as under root: remove it, or start the mesh as its owner"
            )

    def _create_data_dir(self, run_as: ServiceUser | None) -> None:
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise PostgresError(
                f"{self.data_dir} is neither empty nor a PostgreSQL data directory; "
                "remove it or choose another one"
            )
        if run_as is None:
            self.data_dir.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
            return
        ensure_reachable(self.data_dir, run_as)
        if self.data_dir.exists():  # not ours to re-own: it must already be the user's
            if self.data_dir.stat().st_uid != run_as.uid:
                raise PostgresError(
                    f"{self.data_dir} exists but is not owned by {run_as.name!r}, the user "
                    "PostgreSQL runs as under root: remove it and let devmesh create it"
                )
        else:
            self.data_dir.mkdir(mode=DATA_DIR_MODE, parents=True)
            ensure_reachable(self.data_dir, run_as)  # parents we just created, under our umask
            try:
                os.chown(self.data_dir, run_as.uid, run_as.gid)
            except OSError as error:
                raise PrivilegeError(
                    f"cannot hand {self.data_dir} to {run_as.name}: {error}"
                ) from error

    def _initdb(self, bin_dir: Path, run_as: ServiceUser | None) -> None:
        # initdb reads the superuser's password from a file, as the user it runs as.
        password_file = self.data_dir.with_name(f"{self.data_dir.name}.initdb-password")
        descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(self.password(self.superuser))
        if run_as is not None:
            os.chown(password_file, run_as.uid, run_as.gid)
        try:
            result = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "--pgdata",
                    str(self.data_dir),
                    "--username",
                    self.superuser,
                    "--pwfile",
                    str(password_file),
                    "--auth",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--no-locale",
                    "--no-instructions",
                ],
                cwd=self.data_dir,
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                extra_groups=[] if run_as else None,
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            password_file.unlink(missing_ok=True)
        if result.returncode != 0:
            raise PostgresError(f"initdb failed:\n{result.stdout}{result.stderr}")

    def is_ready(self) -> bool:
        try:
            with psycopg.connect(self.dsn_for("postgres"), connect_timeout=2) as connection:
                connection.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def ensure_roles(self) -> None:
        """Create (or re-password) the migration and runtime roles; idempotent."""
        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as connection:
            for role in (MIGRATION_ROLE, RUNTIME_ROLE):
                exists = connection.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
                ).fetchone()
                verb = sql.SQL("ALTER" if exists else "CREATE")
                connection.execute(
                    sql.SQL(
                        "{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}"
                    ).format(verb, sql.Identifier(role), sql.Literal(self.password(role)))
                )

    def create_database(self, name: str) -> str:
        """Create database `name` unless it exists, owned by the migration role, with the
        runtime role's rights on what that role creates; return the owner's DSN."""
        self.ensure_roles()
        database = sql.Identifier(name)
        owner, runtime = sql.Identifier(MIGRATION_ROLE), sql.Identifier(RUNTIME_ROLE)
        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists is None:
                connection.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, owner))
            connection.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
            connection.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, runtime)
            )
        with psycopg.connect(self.dsn_for(name), autocommit=True) as connection:
            for statement in (
                "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
                "GRANT USAGE ON SCHEMA public TO {runtime}",
                "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
                f"GRANT {RUNTIME_TABLE_RIGHTS} ON TABLES TO {{runtime}}",
                "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
                "GRANT USAGE, SELECT ON SEQUENCES TO {runtime}",
            ):
                connection.execute(sql.SQL(statement).format(owner=owner, runtime=runtime))
        return self.dsn_for(name, MIGRATION_ROLE)

    def runtime_dsn_for(self, name: str) -> str:
        """The runtime role's DSN of database `name` (what reporting runs as)."""
        return self.dsn_for(name, RUNTIME_ROLE)

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists, disconnecting whoever still uses it."""
        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def start(self, timeout: float | None = None) -> None:
        """initdb if needed, start, wait until it accepts queries, create the database."""
        super().start(timeout)
        self.create_database(self.database)
