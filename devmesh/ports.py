"""Port checks done before anything starts.

A server that loses the race for its port dies with a message buried in its own log;
checking first lets the runner say which port, who wanted it and how to move it.
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


class PortInUseError(RuntimeError):
    """A port the mesh needs is taken; the message names the port, its user and the fix."""

    def __init__(self, port: int, name: str, *, env_var: str | None = None, host: str = LOOPBACK):
        remedy = f"set {env_var}" if env_var else "choose another port"
        super().__init__(
            f"port {port} ({name}) is already in use on {host} — stop what holds it or {remedy}"
        )
        self.port = port
        self.name = name
        self.env_var = env_var


def free_port(host: str = LOOPBACK) -> int:
    """A port the kernel has just found free; another process may still take it before use."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could listen on `port` now.

    SO_REUSEADDR mirrors what nats-server, PostgreSQL and Envoy set, so a port left in
    TIME_WAIT by a server that just stopped counts as free, as it is for them.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def ensure_free(port: int, name: str, *, env_var: str | None = None, host: str = LOOPBACK) -> None:
    """Raise `PortInUseError` naming `port` and `name` when something already listens there."""
    if not is_free(port, host):
        raise PortInUseError(port, name, env_var=env_var, host=host)
