"""The one preprocessing function: every odd real file decodes, junk is refused with a reason."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from meshkit.images import ImageTooLargeError, UnreadableImageError, open_image
from services.classifier.preprocess import INPUT_SIZE, preprocess
from training.dataset import load_labelled_directory


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def test_odd_files_in_the_dataset_cover_every_kind_of_mess(odd_photos: list[Path]) -> None:
    formats = {Image.open(path).format for path in odd_photos}
    modes = {Image.open(path).mode for path in odd_photos}
    assert {"PNG", "GIF", "JPEG"} <= formats
    assert "L" in modes
    assert "RGBA" in modes


def test_every_odd_file_in_the_dataset_becomes_a_model_input(odd_photos: list[Path]) -> None:
    for path in odd_photos:
        pixels = preprocess(path.read_bytes())
        assert pixels.shape == (INPUT_SIZE, INPUT_SIZE, 3), path
        assert pixels.dtype == np.uint8, path
        assert pixels.std() > 0, f"{path} decoded to a flat image"


def test_training_reads_odd_files_exactly_as_serving_does(
    odd_photos: list[Path], tmp_path: Path
) -> None:
    label_folder = tmp_path / "rain"
    label_folder.mkdir()
    copies = []
    for index, path in enumerate(odd_photos):
        copy = label_folder / f"{index:02d}_{path.name}"
        shutil.copyfile(path, copy)
        copies.append(copy)

    training_view = load_labelled_directory(tmp_path)

    assert training_view.unreadable == ()
    assert list(training_view.paths) == sorted(copies)
    for path, pixels in zip(training_view.paths, training_view.images, strict=True):
        np.testing.assert_array_equal(pixels, preprocess(path.read_bytes()))


def test_format_is_found_by_content_not_by_name(tmp_path: Path) -> None:
    png_bytes = encode(Image.new("RGB", (40, 30), (10, 200, 30)), "PNG")
    pixels = preprocess(png_bytes)
    assert tuple(pixels[0, 0]) == (10, 200, 30)


def test_first_frame_of_an_animated_gif_is_used() -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    gif_bytes = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    pixels = preprocess(gif_bytes)
    assert pixels[..., 0].mean() > 200
    assert pixels[..., 2].mean() < 50


def test_transparent_pixels_become_white() -> None:
    rgba_bytes = encode(Image.new("RGBA", (32, 32), (0, 0, 0, 0)), "PNG")
    assert preprocess(rgba_bytes).min() == 255


def test_grayscale_becomes_three_equal_channels() -> None:
    gray = Image.linear_gradient("L").resize((64, 48))
    pixels = preprocess(encode(gray, "JPEG"))
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 1])
    np.testing.assert_array_equal(pixels[..., 1], pixels[..., 2])


def test_large_jpeg_decoded_at_reduced_scale_looks_like_a_full_decode(
    odd_photos: list[Path],
) -> None:
    largest = odd_photos[-1]
    with Image.open(largest) as full:
        reference = np.asarray(
            full.convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR),
            dtype=np.float64,
        )
    assert np.abs(preprocess(largest.read_bytes()) - reference).mean() < 2.0


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"just some text, not a photo\n",
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
        encode(Image.new("RGB", (8, 8)), "TIFF"),
    ],
    ids=["empty", "text", "eps", "tiff-not-allowed"],
)
def test_non_images_raise_a_domain_error_with_a_reason(junk: bytes) -> None:
    with pytest.raises(UnreadableImageError, match="not a readable image"):
        preprocess(junk)


def test_truncated_jpeg_raises_a_domain_error() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    jpeg_bytes = encode(Image.fromarray(noise), "JPEG", quality=90)
    with pytest.raises(UnreadableImageError):
        preprocess(jpeg_bytes[: len(jpeg_bytes) // 2])


def test_unreadable_image_error_is_a_value_error() -> None:
    assert issubclass(UnreadableImageError, ValueError)
    assert issubclass(ImageTooLargeError, UnreadableImageError)


def test_pixel_cap_is_checked_on_the_header_before_decoding() -> None:
    png_bytes = encode(Image.new("RGB", (400, 300)), "PNG")
    header_only = png_bytes[:100]  # the pixels are missing: only a header check can answer
    with pytest.raises(ImageTooLargeError, match="400x300"):
        open_image(header_only, max_pixels=400 * 300 - 1)
    assert open_image(png_bytes, max_pixels=400 * 300).size == (400, 300)


def test_preprocess_applies_the_pixel_cap() -> None:
    png_bytes = encode(Image.new("RGB", (400, 300)), "PNG")
    with pytest.raises(ImageTooLargeError):
        preprocess(png_bytes, max_pixels=1000)
