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


def with_comment(jpeg: bytes, comment: bytes) -> bytes:
    """`jpeg` with a COM segment holding `comment` right after SOI."""
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return jpeg[:2] + segment + jpeg[2:]


def test_a_jpeg_cut_short_is_refused_even_when_its_header_holds_an_end_marker() -> None:
    # An end-of-image marker inside a header segment (as an EXIF thumbnail has) is not the
    # end of this photo's image data.
    header_with_eoi = with_comment(JPEG, b"thumbnail \xff\xd9 ends here")
    assert check_upload(header_with_eoi, 1024 * 1024, 10_000_000)
    with pytest.raises(UnreadableImageError, match="corrupt or truncated"):
        check_upload(header_with_eoi[:-100], 1024 * 1024, 10_000_000)


def test_a_png_cut_short_is_refused_at_the_door() -> None:
    png = encoded(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG")
    assert check_upload(png, 1024 * 1024, 10_000_000)
    with pytest.raises(UnreadableImageError, match="the PNG image is corrupt or truncated"):
        check_upload(png[: len(png) - 30], 1024 * 1024, 10_000_000)
