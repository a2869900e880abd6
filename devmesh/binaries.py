"""Where the mesh's executables live, and installing PostgreSQL when it is missing.

nats-server, envoy and buf come as wheels (`weather-mesh[tools]`), so they sit beside the
venv's python; PostgreSQL comes from Debian packages because no wheel ships a server
that initdb can run as an unprivileged user without loosening directory permissions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

DEBIAN_POSTGRES_ROOT = Path("/usr/lib/postgresql")
POSTGRES_PACKAGE = "postgresql"
_POSTGRES_PROGRAMS = ("initdb", "postgres")


class MissingBinaryError(RuntimeError):
    """An executable the mesh needs is absent; the message says how to get it."""


def venv_bin_dir() -> Path:
    """The bin directory of the running interpreter's environment (the venv under make)."""
    return Path(sys.prefix) / "bin"


def find_tool(name: str) -> Path:
    """Locate `name` (nats-server, envoy, buf…) in the venv first, then on PATH."""
    candidate = venv_bin_dir() / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise MissingBinaryError(
        f"{name} was found neither in {venv_bin_dir()} nor on PATH — run `make install` "
        "(it installs the weather-mesh[tools] wheels into .venv)"
    )


def _has_postgres_programs(directory: Path) -> bool:
    return all(os.access(directory / program, os.X_OK) for program in _POSTGRES_PROGRAMS)


def _major_version(directory: Path) -> int:
    try:
        return int(directory.parent.name)
    except ValueError:
        return -1


def find_postgres_bin_dir() -> Path | None:
    """The newest Debian PostgreSQL bin dir, else the directory of `initdb` on PATH."""
    if DEBIAN_POSTGRES_ROOT.is_dir():
        candidates = sorted(
            (path / "bin" for path in DEBIAN_POSTGRES_ROOT.iterdir()),
            key=_major_version,
            reverse=True,
        )
        for directory in candidates:
            if _has_postgres_programs(directory):
                return directory
    on_path = shutil.which("initdb")
    if on_path and _has_postgres_programs(Path(on_path).parent):
        return Path(on_path).parent
    return None


def postgres_bin_dir() -> Path:
    """Like `find_postgres_bin_dir`, but a missing server is an error that says what to install."""
    directory = find_postgres_bin_dir()
    if directory is None:
        raise MissingBinaryError(
            "PostgreSQL server programs (initdb, postgres) were not found under "
            f"{DEBIAN_POSTGRES_ROOT}/<version>/bin or on PATH — run `make install` as root, "
            f"or `sudo apt-get install -y {POSTGRES_PACKAGE}`"
        )
    return directory


def _apt_get(*arguments: str) -> subprocess.CompletedProcess[str]:
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        raise MissingBinaryError(
            "PostgreSQL is missing and apt-get is not available: install the PostgreSQL "
            "server (initdb, postgres) with your system's package manager"
        )
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        [apt_get, *arguments], env=environment, capture_output=True, text=True, check=False
    )


def install_postgres() -> Path:
    """Return the PostgreSQL bin dir, installing Debian's `postgresql` first if it is missing.

    Idempotent and instant when the server is present. Installing needs root; without it
    the error names the package to install instead of failing half-way through apt.
    """
    directory = find_postgres_bin_dir()
    if directory is not None:
        return directory
    if os.geteuid() != 0:
        raise MissingBinaryError(
            "PostgreSQL server programs are missing and installing them needs root: run "
            f"`sudo apt-get install -y {POSTGRES_PACKAGE}` (or `sudo make install`)"
        )
    result = _apt_get("install", "-y", "--no-install-recommends", POSTGRES_PACKAGE)
    if result.returncode != 0:  # stale or empty package lists: refresh once and retry
        _apt_get("update")
        result = _apt_get("install", "-y", "--no-install-recommends", POSTGRES_PACKAGE)
    if result.returncode != 0:
        raise MissingBinaryError(
            f"apt-get install {POSTGRES_PACKAGE} failed:\n{result.stdout}{result.stderr}"
        )
    return postgres_bin_dir()
