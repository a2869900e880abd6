"""Categories "frames" and "cors": the gRPC-Web envelope itself, and who may call from where.

Frames are written byte by byte over HTTP/1.1 (lengths that lie, cut-off headers, flags a
client must not set, base64 that is not, content types that are not gRPC-Web, headers far
past any sane size), because that is where a gateway's and a server's parsers meet. CORS
cases send preflights and calls from origins that are not on the allow-list, and one from
the allowed origin as a control: a gateway that refuses everyone would pass otherwise.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence

from devmesh.envoy import UPLOAD_CAP_BYTES
from tools.dast.checks import CaseResult, judge
from tools.dast.target import Target
from tools.proof import grpcweb
from tools.proof.gateway import Outcome, WebTransport
from tools.proof.jobs import GET_JOB, GET_STATS, SUBMIT
from weather.v1 import dispatcher_pb2

FRAMES = "frames"
CORS = "cors"
Headers = Sequence[tuple[str, str]]


def _message() -> bytes:
    return dispatcher_pb2.GetJobRequest(job_id="0" * 32).SerializeToString()


def frame_cases(web: WebTransport) -> list[tuple[str, str, bytes, Headers, str]]:
    """(case, method, body, headers, HTTP method)."""
    message = _message()
    binary = web.headers()
    text = [("Content-Type", grpcweb.CONTENT_TYPE_TEXT), ("X-Grpc-Web", "1")]
    cases: list[tuple[str, str, bytes, Headers, str]] = [
        (
            "length prefix larger than body",
            GET_JOB,
            struct.pack(">BI", 0, 1000) + message,
            binary,
            "POST",
        ),
        (
            "length prefix 0xFFFFFFFF",
            GET_JOB,
            struct.pack(">BI", 0, 0xFFFFFFFF) + message,
            binary,
            "POST",
        ),
        (
            "trailing bytes after frame",
            GET_JOB,
            grpcweb.frame(message) + b"\x00\x00",
            binary,
            "POST",
        ),
        ("truncated frame header", GET_JOB, b"\x00\x00\x00", binary, "POST"),
        ("empty body", GET_JOB, b"", binary, "POST"),
        (
            "compressed flag, no encoding",
            GET_JOB,
            grpcweb.frame(message, flag=0x01),
            binary,
            "POST",
        ),
        (
            "gzip claimed, not gzip",
            GET_JOB,
            grpcweb.frame(message, flag=0x01),
            [*binary, ("grpc-encoding", "gzip")],
            "POST",
        ),
        (
            "trailer frame from client",
            GET_JOB,
            grpcweb.frame(b"grpc-status: 0\r\n", flag=0x80),
            binary,
            "POST",
        ),
        ("two messages to a unary method", GET_JOB, grpcweb.frame(message) * 2, binary, "POST"),
        ("invalid base64", GET_JOB, b"!!!not*base64!!!", text, "POST"),
        (
            "base64 bad padding",
            GET_JOB,
            grpcweb.to_text(grpcweb.frame(message))[:-2] + b"=",
            text,
            "POST",
        ),
        ("binary body labelled text", GET_JOB, grpcweb.frame(message), text, "POST"),
        ("GET on an RPC path", GET_JOB, b"", binary, "GET"),
        (
            f"body over the {UPLOAD_CAP_BYTES // (1 << 20)} MiB cap",
            SUBMIT,
            grpcweb.frame(
                b"\x0a" + _varint(UPLOAD_CAP_BYTES + 1) + b"\xff" * (UPLOAD_CAP_BYTES + 1)
            ),
            binary,
            "POST",
        ),
        (
            "header of 80 KiB",
            GET_JOB,
            grpcweb.frame(message),
            [*binary, ("x-junk", "a" * 80 * 1024)],
            "POST",
        ),
        (
            "500 headers",
            GET_JOB,
            grpcweb.frame(message),
            [*binary, *((f"x-junk-{n}", "b" * 100) for n in range(500))],
            "POST",
        ),
        (
            "unrouted internal method",
            "/weather.v1.ClassifierService/Classify",
            grpcweb.frame(b""),
            binary,
            "POST",
        ),
        (
            "reflection",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            grpcweb.frame(b""),
            binary,
            "POST",
        ),
    ]
    for content_type in (
        "text/plain",
        "application/json",
        "application/grpc-web+json",
        "application/grpc",
        "",
    ):
        headers = [("X-Grpc-Web", "1")] + ([("Content-Type", content_type)] if content_type else [])
        cases.append(
            (
                f"content type {content_type or '(none)'!r}",
                GET_JOB,
                grpcweb.frame(message),
                headers,
                "POST",
            )
        )
    return cases


def _varint(value: int) -> bytes:
    encoded = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        encoded.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(encoded)


MALFORMED_TIMEOUT = "malformed grpc-timeout"
AFTER_MALFORMED_TIMEOUT = "valid GetJob from another client after a malformed grpc-timeout"
RAW_HEAD = b"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc-web+proto\r\n"
RAW_REQUESTS = {
    "chunk size not hex": RAW_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "both Content-Length and chunked": RAW_HEAD
    + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "not HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
}


async def run_frames(target: Target) -> list[CaseResult]:
    web = target.web

    async def one(
        case: str, method: str, body: bytes, headers: Headers, http_method: str
    ) -> CaseResult:
        text = any(value == grpcweb.CONTENT_TYPE_TEXT for _, value in headers)
        probe = WebTransport(web.host, web.port, text=text)
        outcome = await target.bounded(
            probe.call_raw(
                method, body, headers, deadline=target.call_deadline, http_method=http_method
            )
        )
        return judge(
            CaseResult(FRAMES, case, probe.name, method, outcome.code, outcome.message),
            closed_connection_ok=True,
        )

    async def raw(case: str, request: bytes) -> CaseResult:
        outcome = await target.bounded(
            web.call_raw(
                GET_JOB,
                b"",
                (),
                deadline=target.call_deadline,
                raw=request.replace(b"{path}", GET_JOB.encode()),
            )
        )
        return judge(
            CaseResult(FRAMES, case, "raw http", GET_JOB, outcome.code, outcome.message),
            closed_connection_ok=True,
        )

    results = list(await asyncio.gather(*(one(*case) for case in frame_cases(web))))
    results += await asyncio.gather(*(raw(*item) for item in RAW_REQUESTS.items()))
    # Last, and one after the other: a malformed grpc-timeout, then valid calls from other
    # clients, which must not be hurt by what the first one sent.
    results.append(
        await one(
            MALFORMED_TIMEOUT,
            GET_JOB,
            grpcweb.frame(_message()),
            [*web.headers(), ("grpc-timeout", "soon")],
            "POST",
        )
    )
    for transport in (target.web, target.native):
        outcome = await transport.call(GET_JOB, _message(), deadline=target.call_deadline)
        results.append(
            judge(
                CaseResult(
                    FRAMES,
                    AFTER_MALFORMED_TIMEOUT,
                    transport.name,
                    GET_JOB,
                    outcome.code,
                    outcome.message,
                )
            )
        )
    return results


def foreign_origins(allowed: str) -> list[str]:
    scheme, _, hostport = allowed.partition("://")
    host = hostport.rsplit(":", 1)[0]
    return [
        "http://evil.example",
        "null",
        f"{scheme}://{host}:1",
        f"{allowed}.evil.example",
        f"https://{hostport}" if scheme == "http" else f"http://{hostport}",
        f"{scheme}://evil.example@{hostport}",
        allowed.upper(),
        f"{allowed} http://evil.example",
    ]


def cors_verdict(origin: str, allowed: bool, outcome: Outcome) -> list[str]:
    """A foreign origin must get no allow-origin header (and never `*`); the allowed one must."""
    granted = outcome.headers.get("access-control-allow-origin")
    if granted == "*":
        return ["allow-origin is *"]
    if allowed and granted != origin:
        return [f"allowed origin refused (control): allow-origin {granted!r}"]
    if not allowed and granted is not None:
        return [f"foreign origin granted: allow-origin {granted!r}"]
    return []


async def run_cors(target: Target) -> list[CaseResult]:
    allowed_origin = target.endpoints.allowed_origins[0]
    web = target.web
    preflight_headers = [
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "content-type,x-grpc-web"),
    ]

    async def preflight(origin: str, allowed: bool) -> CaseResult:
        outcome = await target.bounded(
            web.call_raw(
                GET_STATS,
                b"",
                [("Origin", origin), *preflight_headers],
                deadline=target.call_deadline,
                http_method="OPTIONS",
            )
        )
        result = CaseResult(
            CORS, f"preflight from {origin!r}", "http/1.1", GET_STATS, f"HTTP {outcome.http_status}"
        )
        result.violations = cors_verdict(origin, allowed, outcome)
        return result

    async def call(origin: str, allowed: bool) -> CaseResult:
        caller = WebTransport(web.host, web.port, origin=origin)
        outcome = await target.bounded(caller.call(GET_STATS, b"", deadline=target.call_deadline))
        result = judge(
            CaseResult(
                CORS, f"call from {origin!r}", caller.name, GET_STATS, outcome.code, outcome.message
            )
        )
        result.violations += cors_verdict(origin, allowed, outcome)
        return result

    origins = [(origin, False) for origin in foreign_origins(allowed_origin)] + [
        (allowed_origin, True)
    ]
    results = await asyncio.gather(
        *(preflight(origin, allowed) for origin, allowed in origins),
        *(call(origin, allowed) for origin, allowed in origins),
    )
    return list(results)
