"""One log stream for the whole mesh: every child's lines, each behind a padded name."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import IO, TextIO

SEPARATOR = " | "


def prefix_width(names: Iterable[str]) -> int:
    return max((len(name) for name in names), default=0)


def prefix_line(name: str, width: int, line: bytes) -> str:
    """`nats       | text`: undecodable bytes are replaced, never allowed to kill the stream."""
    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
    return f"{name:<{width}}{SEPARATOR}{text}\n"


async def pump_lines(name: str, width: int, pipe: IO[bytes], out: TextIO) -> None:
    """Copy `pipe` to `out` line by line until the child closes it."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1024 * 1024)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # longer than the limit; asyncio has already dropped it
                line = b"[devmesh: a line over 1 MiB was dropped]"
            if not line:
                return
            out.write(prefix_line(name, width, line))
            out.flush()
    finally:
        transport.close()
