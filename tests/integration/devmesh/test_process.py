from __future__ import annotations

import signal
import time
from pathlib import Path

from devmesh.process import ManagedProcess


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether `pid` is dead (or a zombie) within `timeout`: SIGKILL is delivered when the
    target is next scheduled, which on a loaded machine is not instant."""
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _spawn(name: str, script: str) -> tuple[ManagedProcess, int]:
    """Start `sh -c script`, which must print the pid of what it forks first."""
    process = ManagedProcess(name, ["/bin/sh", "-c", script])
    process.start()
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def test_a_child_that_exits_takes_what_it_forked_with_it() -> None:
    process, grandchild = _spawn("forker", "sleep 300 & echo $!; exit 3")

    deadline = time.monotonic() + 10
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)

    assert process.poll() == 3
    assert _gone(grandchild)


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored() -> None:
    process, grandchild = _spawn("stubborn", "trap '' TERM; sleep 300 & echo $!; wait")

    code = process.stop(grace=0.5)

    assert code == -signal.SIGKILL
    assert _gone(grandchild)
    assert process.stop() == code  # idempotent
