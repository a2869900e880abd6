"""A deliberately small HTTP/1.1 client on asyncio streams, one connection per request.

gRPC-Web travels over plain HTTP/1.1, and the DAST must be able to send what a proper
client refuses to (a wrong length, broken base64, a 64 KiB header). So requests are
written byte for byte here, and responses are read as HTTP/1.1 frames them (chunked,
Content-Length or close-delimited): a WatchJob stream is one chunked body that ends when
the job does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

HEADER_END = b"\r\n\r\n"
# Envoy may answer with large headers (an echoed grpc-message); leave room.
READ_LIMIT = 1024 * 1024


class HttpProtocolError(RuntimeError):
    """The server's answer is not HTTP/1.1 we can read."""


@dataclass
class Http1Response:
    """Status and headers (lower-case names; repeats joined by ", ") and a body stream."""

    status: int
    reason: str
    headers: dict[str, str]
    _reader: asyncio.StreamReader
    _writer: asyncio.StreamWriter

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives: chunked, Content-Length or close-delimited."""
        reader = self._reader
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            while True:
                size_line = await reader.readline()
                if not size_line:
                    return
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    await reader.readline()
                    return
                data = await reader.readexactly(size)
                await reader.readexactly(2)
                yield data
        elif "content-length" in self.headers:
            remaining = int(self.headers["content-length"])
            while remaining > 0:
                data = await reader.read(min(remaining, 65536))
                if not data:
                    return
                remaining -= len(data)
                yield data
        else:
            while data := await reader.read(65536):
                yield data

    async def body(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


def render_request(
    method: str, path: str, host: str, headers: Sequence[tuple[str, str]], body: bytes
) -> bytes:
    """The request bytes; Content-Length is added unless the caller set its own framing."""
    names = {name.lower() for name, _ in headers}
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def send(
    host: str,
    port: int,
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    raw: bytes | None = None,
) -> Http1Response:
    """Send one request (or `raw` bytes as they are) and read the status and headers."""
    reader, writer = await asyncio.open_connection(host, port, limit=READ_LIMIT)
    try:
        writer.write(
            raw
            if raw is not None
            else render_request(method, path, f"{host}:{port}", headers, body)
        )
        await writer.drain()
        head = await reader.readuntil(HEADER_END)
    except BaseException:
        writer.close()
        raise
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        writer.close()
        raise HttpProtocolError(f"not an HTTP status line: {status_line[:80]!r}")
    headers_read: dict[str, str] = {}
    for line in header_lines:
        name, separator, value = line.partition(":")
        if separator:
            key = name.strip().lower()
            value = value.strip()
            headers_read[key] = f"{headers_read[key]}, {value}" if key in headers_read else value
    return Http1Response(
        int(parts[1]), parts[2] if len(parts) > 2 else "", headers_read, reader, writer
    )
