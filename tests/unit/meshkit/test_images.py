"""One opening of a photo for the whole mesh: the dispatcher refuses at the door exactly
what the classifier could not read, in the same words."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageFile

from meshkit.decode_limit import DecodeLimit, DecoderBusyError
from meshkit.images import (
    DEFAULT_MAX_PIXELS,
    ImageTooLargeError,
    UnreadableImageError,
    decoding,
    is_jpeg,
    open_image,
)
from services.classifier.preprocess import preprocess, to_rgb
from services.dispatcher.uploads import check_upload


def encoded(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def refusal(call: object) -> UnreadableImageError:
    with pytest.raises(UnreadableImageError) as refused:
        call()  # type: ignore[operator]
    return refused.value


@pytest.mark.parametrize(
    "junk",
    [b"", b"just text\n" * 10, encoded(Image.new("RGB", (8, 8)), "TIFF")],
    ids=["empty", "text", "tiff-not-allowed"],
)
def test_the_door_and_the_model_refuse_the_same_bytes_in_the_same_words(junk: bytes) -> None:
    at_the_door = refusal(lambda: check_upload(junk, 1024 * 1024, 10_000_000))
    at_the_model = refusal(lambda: preprocess(junk))
    assert str(at_the_door) == str(at_the_model)
    assert "not a readable image" in str(at_the_door)


def test_too_many_pixels_are_refused_in_the_same_words_too() -> None:
    big = encoded(Image.new("1", (400, 300)), "PNG")
    at_the_door = refusal(lambda: check_upload(big, 1024 * 1024, 1000))
    at_the_model = refusal(lambda: preprocess(big, max_pixels=1000))
    assert type(at_the_door) is type(at_the_model) is ImageTooLargeError
    assert str(at_the_door) == str(at_the_model)
    assert str(at_the_door).startswith("the photo is too large to decode safely")


def test_decoding_turns_pillow_failures_into_ours() -> None:
    with (
        pytest.raises(UnreadableImageError, match=r"^broken: bad data$"),
        decoding("broken: {error}"),
    ):
        raise OSError("bad data")
    with (
        pytest.raises(ImageTooLargeError, match="too large to decode safely: bomb"),
        decoding("unused"),
    ):
        raise Image.DecompressionBombError("bomb")


def test_opening_reads_the_header_only() -> None:
    png = encoded(Image.new("RGB", (40, 30)), "PNG")
    opened = open_image(png[:60])  # the pixel data is cut off: only the header is read
    assert opened.size == (40, 30)
    opened.close()


def mpo_bytes(size: tuple[int, int] = (1600, 1200)) -> bytes:
    """A multi-picture JPEG, as phones write stereo and depth shots."""
    buffer = io.BytesIO()
    first, second = Image.new("RGB", size, "red"), Image.new("RGB", size, "blue")
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    return buffer.getvalue()


def test_mpo_is_decoded_like_a_jpeg_at_a_reduced_scale() -> None:
    image = open_image(mpo_bytes())
    assert image.format == "MPO"
    assert is_jpeg(image)
    assert to_rgb(image).size == (400, 300), "the DCT-scaled decode, not the full 1600x1200"


def test_mpo_is_accepted_at_the_door_and_classified_from_its_first_picture() -> None:
    data = mpo_bytes()
    assert check_upload(data, 10 * 1024**2, DEFAULT_MAX_PIXELS)
    pixels = preprocess(data)
    assert pixels.shape == (128, 128, 3)
    assert tuple(pixels[64, 64]) == (254, 0, 0)


def test_decode_limit_fails_fast_when_full_but_lets_promised_work_wait() -> None:
    limit = DecodeLimit(max_in_flight=1)
    with limit.slot():
        with pytest.raises(DecoderBusyError, match="retry in 1 s"), limit.slot():
            pass
        with limit.slot(fail_fast=False):
            assert limit.in_flight == 2
    assert limit.in_flight == 0


def test_a_photo_damaged_in_its_image_data_passes_the_door_and_the_model_refuses_it() -> None:
    """The door checks the header and the end marker only (no decode): what is damaged in
    between reaches the classifier, whose decode refuses it in words a person can read
    (the job then ends FAILED with them)."""
    photo = encoded(Image.effect_noise((256, 256), 60).convert("RGB"), "JPEG")
    with Image.open(io.BytesIO(photo)) as opened:
        assert isinstance(opened, ImageFile.ImageFile)
        scan_start = opened.tile[0].offset
    middle = (scan_start + len(photo)) // 2
    damaged = photo[:middle] + b"\xff\xc8\x00\x04\x00\x00" + photo[middle:]
    assert check_upload(damaged, 1024 * 1024, 10_000_000)
    refused = refusal(lambda: preprocess(damaged))
    assert str(refused).startswith("the JPEG image is corrupt or truncated and cannot be decoded")
