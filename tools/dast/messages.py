"""Category "protobuf": schema-valid messages with hostile values, and mutated encodings.

Every public method gets the same treatment over native gRPC, gRPC-Web and
gRPC-Web-text: values at and past every edge a field has (empty, huge, NUL, control and
bidi characters, unknown enum numbers, timestamps out of range, forged page tokens), then
the valid encodings with bytes flipped, cut short, or wrapped in wire types that lie.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator

from google.protobuf.message import Message

from tools.dast.checks import CaseResult
from tools.dast.target import Target, judged
from tools.proof.gateway import Transport
from tools.proof.jobs import (
    GET_JOB,
    GET_QUALITY,
    GET_STATS,
    GIVE_FEEDBACK,
    LIST_JOBS,
    SUBMIT,
    WATCH_JOB,
)
from weather.v1 import dispatcher_pb2, reporting_pb2

CATEGORY = "protobuf"
HOSTILE_STRINGS = {
    "empty": "",
    "nul": "abc\x00def",
    "long": "x" * 20_000,
    "traversal": "../../../../etc/passwd",
    "subject wildcard": "weather.job.>",
    "sql": "' OR 1=1; DROP TABLE jobs; --",
    "bidi": "\u202egnp.exe",
    "format string": "%s%s%s%n{0}{__class__}",
    "unicode": "雨\U0001f327\ufffd",
    "control": "\x1b[31m\r\n\t",
}
MAX_TIMESTAMP_SECONDS = 2**62


def _window(
    start_seconds: int, start_nanos: int = 0, end_seconds: int = 0
) -> reporting_pb2.TimeWindow:
    window = reporting_pb2.TimeWindow()
    window.start.seconds, window.start.nanos = start_seconds, start_nanos
    if end_seconds:
        window.end.seconds = end_seconds
    return window


def generated() -> Iterator[tuple[str, str, Message]]:
    """(case name, method, message) with hostile but schema-valid values."""
    for name, value in HOSTILE_STRINGS.items():
        yield f"GetJob id {name}", GET_JOB, dispatcher_pb2.GetJobRequest(job_id=value)
        yield f"WatchJob id {name}", WATCH_JOB, dispatcher_pb2.WatchJobRequest(job_id=value)
        yield (
            f"GiveFeedback id {name}",
            GIVE_FEEDBACK,
            dispatcher_pb2.GiveFeedbackRequest(job_id=value),
        )
        yield (
            f"GiveFeedback label {name}",
            GIVE_FEEDBACK,
            dispatcher_pb2.GiveFeedbackRequest(job_id="0" * 32, actual_label=value),
        )
        yield f"ListJobs label {name}", LIST_JOBS, reporting_pb2.ListJobsRequest(label=value)
        yield f"ListJobs token {name}", LIST_JOBS, reporting_pb2.ListJobsRequest(page_token=value)
        yield (
            f"GetQuality model_version {name}",
            GET_QUALITY,
            reporting_pb2.GetQualityRequest(model_version=value),
        )
        yield (
            f"GetQuality token {name}",
            GET_QUALITY,
            reporting_pb2.GetQualityRequest(page_token=value),
        )
    yield "GetJob well-formed unknown id", GET_JOB, dispatcher_pb2.GetJobRequest(job_id="0" * 32)
    for size in (-1, 101, 2**31 - 1):
        yield f"ListJobs page_size {size}", LIST_JOBS, reporting_pb2.ListJobsRequest(page_size=size)
        yield (
            f"GetQuality page_size {size}",
            GET_QUALITY,
            reporting_pb2.GetQualityRequest(page_size=size),
        )
    yield "ListJobs unknown state 99", LIST_JOBS, reporting_pb2.ListJobsRequest(state=99)  # type: ignore[arg-type]
    forged = base64.urlsafe_b64encode(
        reporting_pb2.ListJobsPageToken(
            last_job_id="\x00", last_submitted_at_micros=-1
        ).SerializeToString()
    ).rstrip(b"=")
    yield (
        "ListJobs forged token (NUL id)",
        LIST_JOBS,
        reporting_pb2.ListJobsRequest(page_token=forged.decode()),
    )
    forged_quality = base64.urlsafe_b64encode(
        reporting_pb2.GetQualityPageToken(
            last_model_version="\x00", last_answered_jobs=-1
        ).SerializeToString()
    ).rstrip(b"=")
    yield (
        "GetQuality forged token (NUL version)",
        GET_QUALITY,
        reporting_pb2.GetQualityRequest(page_token=forged_quality.decode()),
    )
    for name, window in {
        "start past year 9999": _window(MAX_TIMESTAMP_SECONDS),
        "start before year 1": _window(-MAX_TIMESTAMP_SECONDS),
        "negative nanos": _window(0, -1),
        "nanos over a second": _window(0, 2_000_000_000),
        "end before start": _window(2_000_000_000, 0, 1),
    }.items():
        yield f"GetStats window {name}", GET_STATS, reporting_pb2.GetStatsRequest(window=window)
        yield (
            f"GetQuality window {name}",
            GET_QUALITY,
            reporting_pb2.GetQualityRequest(window=window),
        )
        yield f"ListJobs window {name}", LIST_JOBS, reporting_pb2.ListJobsRequest(window=window)
    yield "Submit empty image", SUBMIT, dispatcher_pb2.SubmitRequest()
    for name in ("nul", "long", "traversal", "bidi", "control"):
        yield (
            f"Submit random bytes, filename {name}",
            SUBMIT,
            dispatcher_pb2.SubmitRequest(
                image=b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, filename=HOSTILE_STRINGS[name]
            ),
        )
    yield (
        "Submit idempotency key 20 kB",
        SUBMIT,
        dispatcher_pb2.SubmitRequest(image=b"not an image", idempotency_key="k" * 20_000),
    )


def mutations(valid: bytes, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """Byte-level damage to a valid encoding."""
    if valid:
        flipped = bytearray(valid)
        for _ in range(max(1, len(flipped) // 8)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        yield "bits flipped", bytes(flipped)
        yield "cut short", valid[: rng.randrange(len(valid))]
    yield "varint never ends", valid + b"\x08" + b"\xff" * 11
    yield "length past the end", valid + b"\x12\xff\xff\xff\x0f" + b"x"
    yield "group never closed", valid + b"\x0b" * 64
    yield "reserved field number 0", b"\x00\x01" + valid
    yield "wrong wire type for field 1", b"\x0d\x00\x00\x00\x00" + valid
    yield "unknown field 9999 (1 MB)", valid + b"\xfa\xf0\x04" + b"\x80\x80\x40" + b"u" * (1 << 20)
    yield "random bytes", rng.randbytes(rng.randrange(1, 512))
    yield "deep nesting", b"\x2a\x02" * 2000


def valid_examples() -> dict[str, Message]:
    window = reporting_pb2.TimeWindow()
    window.start.seconds = 1
    return {
        GET_JOB: dispatcher_pb2.GetJobRequest(job_id="0123456789abcdef0123456789abcdef"),
        WATCH_JOB: dispatcher_pb2.WatchJobRequest(job_id="0123456789abcdef0123456789abcdef"),
        LIST_JOBS: reporting_pb2.ListJobsRequest(page_size=5, label="rain", window=window),
        GET_STATS: reporting_pb2.GetStatsRequest(window=window),
        GET_QUALITY: reporting_pb2.GetQualityRequest(window=window, model_version="sha256:0"),
        GIVE_FEEDBACK: dispatcher_pb2.GiveFeedbackRequest(job_id="0" * 32, actual_label="rain"),
        SUBMIT: dispatcher_pb2.SubmitRequest(image=b"\xff\xd8\xff\xe0junk", filename="a.jpg"),
    }


async def run(target: Target) -> list[CaseResult]:
    cases: list[tuple[str, Transport, str, bytes]] = []
    transports = target.transports
    for index, (name, method, message) in enumerate(generated()):
        cases.append(
            (name, transports[index % len(transports)], method, message.SerializeToString())
        )
    for method, message in valid_examples().items():
        for index, (name, damaged) in enumerate(mutations(message.SerializeToString(), target.rng)):
            short = method.rsplit("/", 1)[1]
            cases.append((f"{short} {name}", transports[index % len(transports)], method, damaged))
    return await judged(target, CATEGORY, cases)
