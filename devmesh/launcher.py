"""The life cycle every server the mesh starts shares: prepare, spawn, wait until ready, stop.

NATS, PostgreSQL, Envoy and the UI's file server differ only in how they are prepared and
how readiness is probed; the runner and the test fixtures drive them all the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from devmesh.process import ManagedProcess
from devmesh.readiness import wait_until


class Launcher(ABC):
    name: str
    """Shown in errors ("PostgreSQL has not been prepared yet")."""
    readiness: str
    """What `wait_ready` waits for, for its timeout message ("serving JetStream")."""
    start_timeout: float = 20.0
    stop_grace: float = 10.0

    _process: ManagedProcess | None = None

    @property
    def process(self) -> ManagedProcess:
        if self._process is None:
            raise RuntimeError(f"{self.name} has not been prepared yet; call prepare() or start()")
        return self._process

    def prepare(self) -> None:  # noqa: B027 - optional hook, most servers need it
        """Write config and data directories; idempotent. Nothing by default."""

    def spawn(self) -> None:
        self.process.start()

    @abstractmethod
    def is_ready(self) -> bool: ...

    def wait_ready(self, timeout: float | None = None) -> None:
        wait_until(
            self.is_ready,
            self.process,
            timeout=self.start_timeout if timeout is None else timeout,
            what=self.readiness,
        )

    def start(self, timeout: float | None = None) -> None:
        self.prepare()
        self.spawn()
        self.wait_ready(timeout)

    def stop(self, grace: float | None = None) -> int | None:
        """The graceful signal, SIGKILL after `grace`; None if never prepared."""
        if self._process is None:
            return None
        return self._process.stop(self.stop_grace if grace is None else grace)
