"""Category "images": hostile files made with Pillow, submitted through the gateway.

Bombs and huge dimensions in tiny files (headers rewritten after encoding), truncated
files, polyglots, every awkward mode (CMYK, 16-bit, paletted with transparency, 1-bit),
EXIF stuffed to the segment limit, animations, formats off the allow-list. A refusal must
be a documented status; an accepted file becomes a job that must reach a terminal state
(FAILED is fine) with a message that leaks nothing.
"""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from devmesh.envoy import UPLOAD_CAP_BYTES
from tools.dast.checks import CaseResult, judge
from tools.dast.target import Target
from tools.proof.gateway import Transport
from tools.proof.jobs import SUBMIT, JobsClient
from tools.proof.photos import Photo

CATEGORY = "images"
EXIF_ORIENTATION = 0x0112
EXIF_USER_COMMENT = 0x9286
EXIF_IMAGE_DESCRIPTION = 0x010E


def encode(image: Image.Image, format_name: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format_name, **options)
    return buffer.getvalue()


def _photo(seed: int) -> Image.Image:
    """A small, non-uniform picture (a gradient), so encoders do real work."""
    image = Image.linear_gradient("L").resize((64, 48)).convert("RGB")
    return image.rotate(seed % 360)


def png_with_dimensions(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR then claims `width` x `height` (CRC recomputed)."""
    data = bytearray(encode(_photo(1), "PNG"))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    return bytes(data)


def jpeg_with_dimensions(width: int, height: int) -> bytes:
    """A tiny JPEG whose SOF0 header claims `width` x `height`."""
    data = bytearray(encode(_photo(2), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_with_screen(width: int, height: int) -> bytes:
    data = bytearray(encode(_photo(3).convert("P"), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def bmp_with_dimensions(width: int, height: int) -> bytes:
    data = bytearray(encode(_photo(4), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def exif_heavy() -> bytes:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 9  # no such orientation
    exif[EXIF_IMAGE_DESCRIPTION] = "d" * 30_000
    exif[EXIF_USER_COMMENT] = b"ASCII\0\0\0" + b"c" * 30_000
    return encode(_photo(5), "JPEG", exif=exif.tobytes())


def animated_gif(frames: int) -> bytes:
    images = [_photo(seed).convert("P") for seed in range(frames)]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=10, loop=0)


def hostile_images(photo: bytes) -> dict[str, Callable[[], bytes]]:
    """Case name -> maker (lazy, so a failing maker is reported as a case, not a crash)."""
    return {
        "bomb: 8000x6000 1-bit PNG (48 MP)": lambda: encode(Image.new("1", (8000, 6000)), "PNG"),
        "near the pixel cap: 6000x6000 grey PNG": lambda: encode(
            Image.new("L", (6000, 6000)), "PNG"
        ),
        "PNG header claims 60000x60000": lambda: png_with_dimensions(60_000, 60_000),
        "PNG header claims 2^31-1 x 1": lambda: png_with_dimensions(2**31 - 1, 1),
        "JPEG header claims 65000x65000": lambda: jpeg_with_dimensions(65_000, 65_000),
        "JPEG header claims 0x0": lambda: jpeg_with_dimensions(0, 0),
        "GIF screen 65535x65535": lambda: gif_with_screen(65_535, 65_535),
        "BMP header claims 100000x100000": lambda: bmp_with_dimensions(100_000, 100_000),
        "truncated real JPEG (first half)": lambda: photo[: len(photo) // 2],
        "truncated PNG": lambda: encode(_photo(6), "PNG")[:60],
        "polyglot JPEG + ZIP": lambda: (
            photo + b"PK\x03\x04" + b"\x00" * 26 + b"evil.sh" + b"#!/bin/sh\n"
        ),
        "polyglot GIF + script": lambda: (
            b"GIF89a/*\x01\x00\x01\x00\x00\x00\x00*/=alert(1);//" + b"\x00;"
        ),
        "polyglot PDF header + JPEG": lambda: b"%PDF-1.4\n" + photo,
        "JPEG with script in a comment": lambda: (
            photo[:2] + b"\xff\xfe\x00\x20<?php system($_GET[0]); ?>\x00\x00" + photo[2:]
        ),
        "CMYK JPEG": lambda: encode(_photo(7).convert("CMYK"), "JPEG"),
        "16-bit greyscale PNG": lambda: encode(Image.linear_gradient("L").convert("I;16"), "PNG"),
        "paletted PNG with transparency": lambda: encode(
            _photo(8).convert("P"), "PNG", transparency=0
        ),
        "1-bit PNG": lambda: encode(_photo(9).convert("1"), "PNG"),
        "greyscale+alpha PNG": lambda: encode(_photo(10).convert("LA"), "PNG"),
        "RGBA WebP": lambda: encode(_photo(11).convert("RGBA"), "WEBP"),
        "progressive JPEG": lambda: encode(_photo(12), "JPEG", progressive=True),
        "EXIF-heavy JPEG, orientation 9": exif_heavy,
        "animated GIF, 120 frames": lambda: animated_gif(120),
        "1x1 JPEG": lambda: encode(Image.new("RGB", (1, 1)), "JPEG"),
        "TIFF (off the allow-list)": lambda: encode(_photo(13), "TIFF"),
        "EPS / PostScript": lambda: (
            b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
        ),
        "SVG": lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        "ICO": lambda: encode(_photo(14), "ICO"),
        "text file named .jpg": lambda: b"this is not a photo\n" * 10,
        "single byte": lambda: b"\xff",
        f"upload of {UPLOAD_CAP_BYTES} + 1 bytes": lambda: (
            photo + b"\x00" * (UPLOAD_CAP_BYTES + 1 - len(photo))
        ),
    }


async def run(target: Target, photo_path: Path) -> list[CaseResult]:
    photo = await asyncio.to_thread(photo_path.read_bytes)
    transports: list[Transport] = [target.native, target.web]

    async def one(index: int, case: str, make: Callable[[], bytes]) -> CaseResult:
        transport = transports[index % len(transports)]
        try:
            image = await asyncio.to_thread(make)
        except (OSError, ValueError) as error:
            return CaseResult(
                CATEGORY,
                case,
                transport.name,
                SUBMIT,
                "NOT SENT",
                str(error),
                [f"could not build the file: {error}"],
            )
        outcome, job = await target.bounded(
            JobsClient(transport, target.call_deadline * 3).submit(Photo(f"case{index}.jpg", image))
        )
        result = judge(
            CaseResult(CATEGORY, case, transport.name, SUBMIT, outcome.code, outcome.message)
        )
        result.job_id = job.id if job else None
        return result

    cases = hostile_images(photo).items()
    return list(
        await asyncio.gather(*(one(index, case, make) for index, (case, make) in enumerate(cases)))
    )
