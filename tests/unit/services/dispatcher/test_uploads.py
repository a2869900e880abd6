"""What Submit accepts, decided before anything is stored."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from meshkit.images import UnreadableImageError
from services.dispatcher.uploads import UploadTooLargeError, check_upload


def encoded(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


JPEG = encoded(Image.new("RGB", (320, 240), "skyblue"), "JPEG")


def test_a_photo_is_accepted_and_named_by_its_sha256() -> None:
    assert check_upload(JPEG, 1024 * 1024, 10_000_000) == hashlib.sha256(JPEG).hexdigest()


def test_the_size_cap_applies_before_any_decoding() -> None:
    with pytest.raises(UploadTooLargeError, match="limit is 100 bytes"):
        check_upload(b"\x00" * 101, 100, 10_000_000)


@pytest.mark.parametrize(
    ("upload", "phrase"),
    [
        (b"", "empty"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not a supported image"),
        (b"just some text\n" * 20, "not a supported image"),
        (JPEG[: len(JPEG) // 2], "corrupt or truncated"),
    ],
    ids=["empty", "postscript", "text", "truncated-jpeg"],
)
def test_what_is_not_a_readable_photo_is_refused_in_plain_words(upload: bytes, phrase: str) -> None:
    with pytest.raises(UnreadableImageError, match=phrase):
        check_upload(upload, 1024 * 1024, 10_000_000)


def test_too_many_pixels_are_refused_from_the_header() -> None:
    big = encoded(Image.new("1", (4000, 3000)), "PNG")
    with pytest.raises(UnreadableImageError, match="too large"):
        check_upload(big, 1024 * 1024, 1_000_000)


def test_an_animated_gif_is_accepted() -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    gif = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert check_upload(gif, 1024 * 1024, 10_000_000)
