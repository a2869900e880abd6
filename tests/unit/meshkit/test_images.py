"""One opening of a photo for the whole mesh: the dispatcher refuses at the door exactly
what the classifier could not read, in the same words."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from meshkit.images import ImageTooLargeError, UnreadableImageError, decoding, open_image
from services.classifier.preprocess import preprocess
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
