"""Waiting until a freshly started server answers, or saying why it never will."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable

from devmesh.process import ManagedProcess, ProcessExitedError

POLL_INTERVAL_SECONDS = 0.1


def http_status(host: str, port: int, path: str, timeout: float = 1.0) -> int | None:
    """The status of GET http://host:port/path, or None when nothing answers yet."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def wait_until(
    ready: Callable[[], bool], process: ManagedProcess, *, timeout: float, what: str
) -> None:
    """Poll `ready` until it holds; stop early with the exit code if `process` dies.

    Watching the process turns "timed out after 30 s" into "exited with code 1 at once",
    which is the difference between a useful and a useless error on a port clash.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ProcessExitedError(process.name, process.poll(), process.log_path)
        if ready():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process.name} was not {what} after {timeout:g} s")
        time.sleep(POLL_INTERVAL_SECONDS)
