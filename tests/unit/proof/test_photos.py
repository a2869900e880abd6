"""Distinct photos: unique bytes, same pixels."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from PIL import Image

from tools.proof.photos import DistinctPhotos, with_comment


def jpeg(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    Image.linear_gradient("L").convert("RGB").save(path, format="JPEG")
    return path


def test_comment_changes_the_bytes_not_the_pixels(tmp_path: Path) -> None:
    original = jpeg(tmp_path).read_bytes()
    tagged = with_comment(original, b"run 1")
    assert hashlib.sha256(tagged).digest() != hashlib.sha256(original).digest()
    with Image.open(io.BytesIO(original)) as before, Image.open(io.BytesIO(tagged)) as after:
        assert before.tobytes() == after.tobytes()


def test_every_photo_of_the_supply_is_distinct(tmp_path: Path) -> None:
    photos = DistinctPhotos([jpeg(tmp_path)], tag="t")
    images = [next(photos).image for _ in range(50)]
    assert len(set(images)) == 50


def test_padding_reaches_the_asked_size_and_still_decodes(tmp_path: Path) -> None:
    photo = next(DistinctPhotos([jpeg(tmp_path)], tag="t", pad_to=300_000))
    assert len(photo.image) >= 300_000
    with Image.open(io.BytesIO(photo.image)) as image:
        image.load()
        assert image.size == (256, 256)
