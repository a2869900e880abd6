"""Resident memory and CPU time of the mesh's processes, read from /proc, sampled over a run.

Each mesh process leads its own process group (devmesh starts every child in a new
session), so a component's memory is the sum over its group and over the descendants that
start sessions of their own: PostgreSQL's backends and helpers count with the postmaster.
Shared pages are counted once per process, so a group's figure is an upper bound; it is
the figure `ps` and the kernel's OOM killer show.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

PROC = Path("/proc")
KIB = 1024
TCP_LISTEN_STATE = "0A"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
T = TypeVar("T", int, float)


def _stat_fields(pid_dir: Path) -> list[str] | None:
    """stat(5) fields after the command name (in parentheses, it may hold spaces)."""
    try:
        stat = (pid_dir / "stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def _rss_bytes(pid_dir: Path) -> int:
    try:
        for line in (pid_dir / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * KIB
    except OSError:
        return 0
    return 0


def _cpu_seconds(pid_dir: Path) -> float:
    """User + system CPU time of the process and of its children it has reaped (PostgreSQL's
    backends that ended count with the postmaster)."""
    fields = _stat_fields(pid_dir)
    if fields is None:
        return 0.0
    # utime, stime, cutime, cstime: fields 14-17 of stat(5), 11-14 after the command name.
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def members(leaders: Mapping[str, int]) -> dict[int, str]:
    """Every live process of a component: its leader's process group, and any descendant
    that started a session of its own (PostgreSQL's children do)."""
    by_leader = {pid: name for name, pid in leaders.items()}
    parents: dict[int, tuple[int, int]] = {}
    for pid_dir in PROC.iterdir():
        if pid_dir.name.isdigit():
            fields = _stat_fields(pid_dir)
            if fields is not None:
                parents[int(pid_dir.name)] = (int(fields[1]), int(fields[2]))

    def owner(pid: int, depth: int = 0) -> str | None:
        if pid in by_leader:
            return by_leader[pid]
        if pid not in parents or depth > 64:
            return None
        parent, group = parents[pid]
        return by_leader.get(group) or owner(parent, depth + 1)

    found = {pid: owner(pid) for pid in parents}
    return {pid: name for pid, name in found.items() if name is not None}


def _per_component(
    leaders: Mapping[str, int], measure: Callable[[Path], T], zero: T
) -> dict[str, T]:
    """`measure` of every process, summed per component."""
    totals: dict[str, Any] = dict.fromkeys(leaders, zero)
    for pid, name in members(leaders).items():
        totals[name] += measure(PROC / str(pid))
    return totals


def group_rss(leaders: Mapping[str, int]) -> dict[str, int]:
    """RSS in bytes per component, summed over its processes."""
    return _per_component(leaders, _rss_bytes, 0)


def group_cpu_seconds(leaders: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds used so far per component, summed over its processes: the difference of
    two readings is what a run cost each component."""
    return _per_component(leaders, _cpu_seconds, 0.0)


def listening_pids(ports: Mapping[str, int]) -> dict[str, int]:
    """The pid listening on each named TCP port of 127.0.0.1 (a mesh we did not start)."""
    wanted = {port: name for name, port in ports.items()}
    inodes: dict[str, str] = {}
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (PROC / "net" / table).read_text().splitlines()[1:]:
                columns = line.split()
                port = int(columns[1].rsplit(":", 1)[1], 16)
                if columns[3] == TCP_LISTEN_STATE and port in wanted:
                    inodes[f"socket:[{columns[9]}]"] = wanted[port]
    found: dict[str, int] = {}
    for pid_dir in PROC.iterdir():
        if not pid_dir.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for descriptor in (pid_dir / "fd").iterdir():
                name = inodes.get(str(descriptor.readlink()))
                if name is not None:
                    found.setdefault(name, int(pid_dir.name))
    return found


@dataclass
class MemorySeries:
    """Samples per component: (seconds since start, bytes); peak per component."""

    samples: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    def add(self, elapsed: float, rss: Mapping[str, int]) -> None:
        for name, value in rss.items():
            if value:
                self.samples.setdefault(name, []).append((round(elapsed, 2), value))

    def peaks(self) -> dict[str, int]:
        return {name: max(value for _, value in series) for name, series in self.samples.items()}


async def sample_memory(
    leaders: Callable[[], Mapping[str, int]],
    series: MemorySeries,
    stop: asyncio.Event,
    interval: float = 1.0,
) -> None:
    """Append a sample every `interval` seconds until `stop` is set (leaders may change:
    a restarted component is followed under its new pid)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not stop.is_set():
        rss = await asyncio.to_thread(group_rss, dict(leaders()))
        series.add(loop.time() - started, rss)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
