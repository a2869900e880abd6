"""Bad inputs get the right status with a human message, and never crash or wedge a service.

Decision recorded here: an animated GIF is accepted and classified by its first frame
(the dataset itself contains one); a decompression bomb is refused from its header.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import grpc
import pytest
from PIL import Image

from weather.v1 import classifier_pb2, dispatcher_pb2, job_pb2

Pipeline = Any  # the `pipeline` fixture's object (see conftest.py)
MiB = 1024 * 1024


def png_bomb(side: int = 20_000) -> bytes:
    """A single-colour side-by-side-pixel PNG of a few kilobytes (1-bit rows, zlib-compressed)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    compressed = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", compressed)
        + chunk(b"IEND", b"")
    )


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (64, 48), colour) for colour in ("skyblue", "gray", "orange")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bad_uploads(photos: list[Path]) -> dict[str, tuple[bytes, grpc.StatusCode, str]]:
    """name → (bytes, expected status, a phrase the message must contain)."""
    jpeg = next(path for path in photos if path.read_bytes()[:2] == b"\xff\xd8").read_bytes()
    return {
        "empty": (b"", grpc.StatusCode.INVALID_ARGUMENT, "empty"),
        "11 MiB of noise": (os.urandom(11 * MiB), grpc.StatusCode.RESOURCE_EXHAUSTED, "limit"),
        "text file": (
            b"weather: sunny\n" * 100,
            grpc.StatusCode.INVALID_ARGUMENT,
            "not a supported image",
        ),
        "truncated JPEG": (
            jpeg[: len(jpeg) // 2],
            grpc.StatusCode.INVALID_ARGUMENT,
            "truncated",
        ),
        "PNG bomb": (png_bomb(), grpc.StatusCode.INVALID_ARGUMENT, "too large"),
    }


async def test_bad_uploads_and_job_ids_get_the_right_status_and_nothing_wedges(
    pipeline: Pipeline, photos: list[Path], bad_uploads: dict[str, tuple[bytes, Any, str]]
) -> None:
    for name, (image, code, phrase) in bad_uploads.items():
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pipeline.submit(image, filename=f"{name}.jpg")
        assert refused.value.code() == code, name
        assert phrase in (refused.value.details() or ""), (name, refused.value.details())

    for job_id in ("0" * 32, "weather.job.>", ""):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await pipeline.dispatcher_stub.GetJob(dispatcher_pb2.GetJobRequest(job_id=job_id))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND, job_id
        assert "no job" in (missing.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await pipeline.finished(job_id)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND, job_id

    # An animated GIF is accepted: its first frame is classified.
    gif_job = await pipeline.submit(animated_gif(), filename="loop.gif")
    job = await pipeline.submit(photos[0].read_bytes())
    for accepted in (gif_job, job):
        final = (await pipeline.finished(accepted.id))[-1]
        assert final.state == job_pb2.JOB_STATE_SUCCEEDED
        assert final.classification.label
    assert pipeline.dispatcher.process.poll() is None
    assert pipeline.classifier.process.poll() is None


async def test_classify_refuses_what_is_not_a_photo(
    pipeline: Pipeline, photos: list[Path], bad_uploads: dict[str, tuple[bytes, Any, str]]
) -> None:
    for name in ("empty", "text file", "truncated JPEG", "PNG bomb"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pipeline.classifier_stub.Classify(
                classifier_pb2.ClassifyRequest(image=bad_uploads[name][0]), timeout=30
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
    answer = await pipeline.classifier_stub.Classify(
        classifier_pb2.ClassifyRequest(image=photos[0].read_bytes()), timeout=30
    )
    assert answer.classification.label
    assert pipeline.classifier.process.poll() is None


def damaged_inside(jpeg: bytes) -> bytes:
    """`jpeg` with a marker that cannot be there in the middle of its image data: header and
    end marker intact, so it passes the door's cheap check; no decoder can read it."""
    middle = len(jpeg) * 3 // 4
    return jpeg[:middle] + b"\xff\xc8\x00\x04\x00\x00" + jpeg[middle:]


async def test_a_photo_damaged_inside_is_accepted_and_its_job_fails_once_with_a_clear_reason(
    pipeline: Pipeline, photos: list[Path]
) -> None:
    jpeg = next(path for path in photos if path.read_bytes()[:2] == b"\xff\xd8").read_bytes()
    job = await pipeline.submit(damaged_inside(jpeg), filename="damaged.jpg")
    states = await pipeline.finished(job.id)
    terminal = [
        state
        for state in states
        if state.state in (job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED)
    ]
    assert [state.state for state in terminal] == [job_pb2.JOB_STATE_FAILED]
    assert "the JPEG image is corrupt or truncated" in terminal[0].error_message
    assert pipeline.classifier.process.poll() is None
