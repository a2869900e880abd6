"""One long-running child process, started in its own session and stopped for sure.

Each child leads its own process group so that (a) the terminal's Ctrl-C reaches only
the runner, which then stops children in a sensible order, and (b) stopping a child also
stops whatever it forked (PostgreSQL backends), leaving no orphans behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from devmesh.privileges import ServiceUser

STOP_POLL_SECONDS = 0.05


class ProcessExitedError(RuntimeError):
    """A child exited while we waited for it to become ready."""

    def __init__(self, name: str, returncode: int | None, log_path: Path | None = None):
        where = f"; its log is {log_path}" if log_path else "; see its log lines above"
        super().__init__(f"{name} exited with code {returncode} before it was ready{where}")
        self.name = name
        self.returncode = returncode


class ManagedProcess:
    """A named child: `start`, `poll`, `stop` (graceful signal, then SIGKILL to the group).

    Output goes to `log_path` (appended, so a restart keeps the earlier lines) or, when
    no path is given, to a pipe the caller reads through `stdout`.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_path: Path | None = None,
        run_as: ServiceUser | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.log_path = log_path
        self.run_as = run_as
        self.stop_signal = stop_signal
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def stdout(self) -> IO[bytes] | None:
        return self._popen.stdout if self._popen else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self.poll() is None

    def poll(self) -> int | None:
        """The exit code once the child has exited, else None.

        Whatever the child left in its process group is killed *before* the child is
        reaped: until then its pid, which is the group id, cannot be reused, so the
        SIGKILL cannot reach an unrelated process that happens to get the same number.
        """
        popen = self._popen
        if popen is None:
            return None
        if popen.returncode is None:
            # Only reap what was seen exited and whose group was killed: reaping a child
            # that exited between the check and `Popen.poll()` would orphan its group.
            exited = _has_exited(popen.pid)
            if exited is False:
                return None
            if exited:
                _kill_group(popen.pid)
        return popen.poll()

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        with contextlib.ExitStack() as stack:
            output: int | IO[bytes] = subprocess.PIPE
            if self.log_path is not None:
                output = stack.enter_context(self.log_path.open("ab"))
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                user=self.run_as.uid if self.run_as else None,
                group=self.run_as.gid if self.run_as else None,
                extra_groups=[] if self.run_as else None,
            )

    def stop(self, grace: float = 10.0) -> int | None:
        """Send the graceful signal, wait up to `grace` seconds, then SIGKILL the group.

        Returns the exit code, or None if the process was never started. Safe to call
        twice and on a child that already died.
        """
        popen = self._popen
        if popen is None:
            return None
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(popen.pid, self.stop_signal)
            deadline = time.monotonic() + grace
            while self.poll() is None and time.monotonic() < deadline:
                time.sleep(STOP_POLL_SECONDS)
            if self.poll() is None:
                _kill_group(popen.pid)
                popen.wait()
        return popen.returncode


def _has_exited(pid: int) -> bool | None:
    """Whether child `pid` has exited, leaving it unreaped (a zombie) for the caller;
    None when it was already reaped elsewhere (its id may be reused: kill nothing, and
    let the caller learn the exit code from Popen)."""
    try:
        status = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return None
    return status is not None


def _kill_group(process_group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process_group, signal.SIGKILL)
