"""Running PostgreSQL as an unprivileged user when the mesh is started by root.

postgres refuses to run as root. Rather than loosening permissions on directories we
did not create (what pgserver does), we run it as a dedicated system user and check that
the user can reach the data directory, failing with a message that names the blocker.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "weather-mesh"
NOLOGIN = "/usr/sbin/nologin"
_USERADD_NAME_IN_USE = 9


class PrivilegeError(RuntimeError):
    """The service user cannot be created, or cannot reach a directory it needs."""


@dataclass(frozen=True)
class ServiceUser:
    """An account children are started as (Popen's user/group, no supplementary groups)."""

    name: str
    uid: int
    gid: int

    @property
    def groups(self) -> frozenset[int]:
        supplementary = {group.gr_gid for group in grp.getgrall() if self.name in group.gr_mem}
        return frozenset({self.gid, *supplementary})


def lookup_user(name: str) -> ServiceUser | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return ServiceUser(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid)


def ensure_service_user(name: str = SERVICE_USER) -> ServiceUser:
    """Create the system user `name` (no home, no login shell) unless it exists already."""
    existing = lookup_user(name)
    if existing is not None:
        return existing
    useradd = shutil.which("useradd")
    if useradd is None:
        raise PrivilegeError(f"cannot create the system user {name!r}: useradd is not installed")
    result = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--shell", NOLOGIN, name],
        capture_output=True,
        text=True,
        check=False,
    )
    created = lookup_user(name)
    if created is None or result.returncode not in (0, _USERADD_NAME_IN_USE):
        raise PrivilegeError(f"useradd {name} failed: {result.stderr.strip()}")
    return created


def can_traverse(directory: Path, user: ServiceUser) -> bool:
    """Whether `user` may enter `directory`, by its owner/group/other execute bits."""
    info = directory.stat()
    if info.st_uid == user.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in user.groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def ensure_reachable(path: Path, user: ServiceUser) -> None:
    """Fail naming the first ancestor of `path` that `user` cannot enter; change nothing."""
    for ancestor in reversed(path.absolute().parents):
        if ancestor.exists() and not can_traverse(ancestor, user):
            mode = stat.S_IMODE(ancestor.stat().st_mode)
            raise PrivilegeError(
                f"PostgreSQL runs as {user.name!r}, which cannot enter {ancestor} "
                f"(mode {mode:04o}, owner uid {ancestor.stat().st_uid}): put the data directory "
                f"under a path {user.name!r} can traverse, or grant it yourself "
                f"(e.g. `chmod o+x {ancestor}`)"
            )


def current_user_is_root() -> bool:
    return os.geteuid() == 0
