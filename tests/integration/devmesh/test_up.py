"""`python -m devmesh up` as a developer runs it, infrastructure only (DEVMESH_SERVICES=)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devmesh.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[3]
INFRASTRUCTURE = {"nats-server", "postgres", "envoy"}


def _stat(pid: int) -> tuple[int, str, str, int] | None:
    """(ppid, comm, state, start time) from /proc, or None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), comm, fields[0], int(fields[19])


def _descendants(root: int) -> dict[int, tuple[str, int]]:
    """Every process below `root`: pid -> (comm, start time), the pair that survives pid reuse."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := _stat(int(entry.name))) is not None:
            table[int(entry.name)] = info
    found: dict[int, tuple[str, int]] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, comm, _, started) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = (comm, started)
                frontier.append(pid)
    return found


def _survivors(processes: dict[int, tuple[str, int]]) -> list[str]:
    alive = []
    for pid, (comm, started) in processes.items():
        info = _stat(pid)
        if info is not None and info[3] == started and info[2] != "Z":
            alive.append(f"{comm} (pid {pid})")
    return alive


class MeshRun:
    """A `devmesh up` child whose merged output is collected line by line."""

    def __init__(self, environment: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devmesh", "up"],
            cwd=REPO_ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no {text!r} from devmesh up; output:\n{self.output}")
            time.sleep(0.1)

    def finish(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


@pytest.fixture
def mesh_environment() -> Iterator[dict[str, str]]:
    data_dir = Path(tempfile.mkdtemp(prefix="weather-mesh-up-"))
    data_dir.chmod(0o711)  # PostgreSQL runs as an unprivileged user under root
    ports = {
        name: str(free_port())
        for name in (
            "NATS_PORT",
            "NATS_MONITOR_PORT",
            "POSTGRES_PORT",
            "ENVOY_PORT",
            "ENVOY_ADMIN_PORT",
        )
    }
    yield {
        **os.environ,
        **ports,
        "DEVMESH_SERVICES": "",
        "DEVMESH_DATA_DIR": str(data_dir),
        "DEVMESH_STOP_GRACE_SECONDS": "10",
    }
    shutil.rmtree(data_dir, ignore_errors=True)


def _start_and_stop(environment: dict[str, str], stop_signal: signal.Signals) -> None:
    run = MeshRun(environment)
    try:
        run.wait_for("mesh is up")
        children = _descendants(run.process.pid)
        assert {comm for comm, _ in children.values()} >= INFRASTRUCTURE, children

        run.process.send_signal(stop_signal)
        assert run.finish() == 0, run.output
    finally:
        if run.process.poll() is None:
            run.process.kill()
    assert _survivors(children) == [], run.output
    assert "all processes stopped" in run.output


def test_sigterm_then_ctrl_c_on_reused_data_dirs_leave_no_process_behind(
    mesh_environment: dict[str, str],
) -> None:
    _start_and_stop(mesh_environment, signal.SIGTERM)
    _start_and_stop(mesh_environment, signal.SIGINT)


def test_a_taken_port_stops_up_before_anything_starts(mesh_environment: dict[str, str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(mesh_environment["NATS_PORT"])))
        holder.listen()
        run = MeshRun(mesh_environment)
        code = run.finish()

    port = mesh_environment["NATS_PORT"]
    assert code == 2
    assert (
        f"port {port} (NATS) is already in use on 127.0.0.1 — stop what holds it or set NATS_PORT"
    ) in run.output
    assert "nats-server" not in run.output


def test_a_child_that_dies_stops_the_rest_with_an_error(
    mesh_environment: dict[str, str],
) -> None:
    run = MeshRun(mesh_environment)
    try:
        run.wait_for("mesh is up")
        children = _descendants(run.process.pid)
        nats_pid = next(pid for pid, (comm, _) in children.items() if comm == "nats-server")

        os.kill(nats_pid, signal.SIGKILL)

        assert run.finish() == 1
    finally:
        if run.process.poll() is None:
            run.process.kill()
    assert "nats exited unexpectedly with code -9" in run.output
    assert _survivors(children) == [], run.output


# The classifier is left out: it is SERVING only once a trained model ships, and its
# TensorFlow start-up would dominate this test. It is started like the other two.
SERVICES_UNDER_TEST = ("dispatcher", "reporting")


def test_services_become_serving_and_stop_without_leftovers(
    mesh_environment: dict[str, str],
) -> None:
    environment = {
        **mesh_environment,
        "DEVMESH_SERVICES": ",".join(SERVICES_UNDER_TEST),
        "DEVMESH_READY_TIMEOUT_SECONDS": "60",
    }
    for name in SERVICES_UNDER_TEST:
        prefix = name.upper()
        environment[f"{prefix}_GRPC_PORT"] = str(free_port())
        environment[f"{prefix}_METRICS_PORT"] = str(free_port())
    run = MeshRun(environment)
    try:
        run.wait_for("mesh is up", timeout=120)
        children = _descendants(run.process.pid)
        run.process.send_signal(signal.SIGTERM)
        assert run.finish() == 0, run.output
    finally:
        if run.process.poll() is None:
            run.process.kill()
    assert "not SERVING" not in run.output, run.output
    assert "dispatcher gRPC" in run.output
    assert "reporting gRPC" in run.output
    assert _survivors(children) == [], run.output
