"""Resident memory of the mesh's processes, read from /proc, sampled over a run.

Each mesh process leads its own process group (devmesh starts every child in a new
session), so a component's memory is the sum over its group: PostgreSQL's backends count
with the postmaster. Shared pages are counted once per process, so a group's figure is an
upper bound; it is the figure `ps` and the kernel's OOM killer show.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
KIB = 1024
TCP_LISTEN_STATE = "0A"


def _group_of(pid_dir: Path) -> int | None:
    try:
        stat = (pid_dir / "stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[2])


def _rss_bytes(pid_dir: Path) -> int:
    try:
        for line in (pid_dir / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * KIB
    except OSError:
        return 0
    return 0


def group_rss(leaders: Mapping[str, int]) -> dict[str, int]:
    """RSS in bytes per component, summed over the process group its leader heads."""
    by_group = {pid: name for name, pid in leaders.items()}
    totals = dict.fromkeys(leaders, 0)
    for pid_dir in PROC.iterdir():
        if not pid_dir.name.isdigit():
            continue
        group = _group_of(pid_dir)
        name = by_group.get(group) if group is not None else None
        if name is None and int(pid_dir.name) in by_group:
            name = by_group[int(pid_dir.name)]
        if name is not None:
            totals[name] += _rss_bytes(pid_dir)
    return totals


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
