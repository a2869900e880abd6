"""The gRPC-Web wire format (binary and text), encoded and decoded by hand.

A gRPC-Web body is a run of frames: one flag byte (0x00 data, 0x80 trailers), a 4-byte
big-endian length, the payload. The response's last frame carries the trailers as HTTP/1
header lines ("grpc-status: 0\\r\\n"). The text variant base64-encodes the same bytes; a
server may send several independently padded base64 chunks. Doing this by hand (rather
than through a client library) lets the DAST send frames no library would produce.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass, field

DATA_FLAG = 0x00
TRAILER_FLAG = 0x80
FRAME_HEADER_BYTES = 5
CONTENT_TYPE_BINARY = "application/grpc-web+proto"
CONTENT_TYPE_TEXT = "application/grpc-web-text"


class FramingError(ValueError):
    """The response body is not a well-formed run of gRPC-Web frames."""


def frame(payload: bytes, flag: int = DATA_FLAG) -> bytes:
    return struct.pack(">BI", flag, len(payload)) + payload


def to_text(body: bytes) -> bytes:
    return base64.b64encode(body)


def from_text(body: bytes) -> bytes:
    """Decode base64 that may be several padded chunks one after another."""
    decoded = bytearray()
    chunk_start = 0
    compact = b"".join(body.split())
    while chunk_start < len(compact):
        end = compact.find(b"=", chunk_start)
        if end == -1:
            end = len(compact)
        else:
            while end < len(compact) and compact[end : end + 1] == b"=":
                end += 1
        try:
            decoded += base64.b64decode(compact[chunk_start:end], validate=True)
        except binascii.Error as error:
            raise FramingError(f"invalid base64 in grpc-web-text body: {error}") from error
        chunk_start = end
    return bytes(decoded)


@dataclass
class GrpcWebReply:
    """A decoded gRPC-Web response: its messages and its trailers (lower-case names)."""

    messages: list[bytes] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)


def parse_trailers(block: bytes) -> dict[str, str]:
    trailers: dict[str, str] = {}
    for line in block.decode("utf-8", errors="replace").split("\r\n"):
        name, separator, value = line.partition(":")
        if separator:
            trailers[name.strip().lower()] = value.strip()
    return trailers


def parse_frames(body: bytes) -> GrpcWebReply:
    """Split a binary body into data messages and the trailer frame."""
    reply = GrpcWebReply()
    offset = 0
    while offset < len(body):
        if len(body) - offset < FRAME_HEADER_BYTES:
            raise FramingError(f"{len(body) - offset} stray bytes after the last frame")
        flag, length = struct.unpack_from(">BI", body, offset)
        offset += FRAME_HEADER_BYTES
        payload = body[offset : offset + length]
        if len(payload) < length:
            raise FramingError(f"frame declares {length} bytes, {len(payload)} arrived")
        offset += length
        if flag & TRAILER_FLAG:
            reply.trailers.update(parse_trailers(payload))
        else:
            reply.messages.append(payload)
    return reply
