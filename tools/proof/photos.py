"""Distinct real photos: the shared dataset's JPEGs, each made unique by a JPEG comment.

The dispatcher answers a photo it has classified before from its result cache, so a
harness that reused bytes would measure the cache, not the pipeline. A COM segment right
after the SOI marker changes the bytes (and so the hash) without changing a pixel.
"""

from __future__ import annotations

import csv
import itertools
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "weather"
JPEG_SOI = b"\xff\xd8"
JPEG_COM = b"\xff\xfe"
# A segment length is 16 bits and counts its own two bytes.
MAX_COMMENT_BYTES = 0xFFFF - 2


class DatasetError(RuntimeError):
    """The photo dataset is missing or holds no JPEG: the harness needs real photographs."""


def dataset_jpegs(dataset: Path = DEFAULT_DATASET) -> list[Path]:
    """Every JPEG of the dataset by its manifest (format sniffed, not guessed from the name)."""
    manifest = dataset / "MANIFEST.csv"
    if not manifest.is_file():
        raise DatasetError(f"no photo dataset at {dataset.resolve()} (MANIFEST.csv missing)")
    with manifest.open(newline="") as rows:
        paths = [dataset / row["path"] for row in csv.DictReader(rows) if row["format"] == "JPEG"]
    if not paths:
        raise DatasetError(f"{manifest} lists no JPEG photo")
    return sorted(paths)


def with_comment(jpeg: bytes, comment: bytes) -> bytes:
    """`jpeg` with COM segments holding `comment` right after SOI (split when long)."""
    if not jpeg.startswith(JPEG_SOI):
        raise ValueError("not a JPEG: it does not start with SOI")
    segments = [
        JPEG_COM + struct.pack(">H", len(part) + 2) + part
        for part in (
            comment[start : start + MAX_COMMENT_BYTES]
            for start in range(0, max(len(comment), 1), MAX_COMMENT_BYTES)
        )
    ]
    return JPEG_SOI + b"".join(segments) + jpeg[len(JPEG_SOI) :]


@dataclass(frozen=True)
class Photo:
    """One upload: unique bytes and the file name the client reports."""

    filename: str
    image: bytes


class DistinctPhotos:
    """An endless supply of distinct photos: the dataset in a loop, each copy tagged anew.

    `tag` keeps two harness runs (or two phases of one) from producing the same bytes;
    `pad_to` inflates each photo with comment bytes (to fill a storage budget quickly).
    """

    def __init__(self, paths: list[Path], tag: str, pad_to: int = 0) -> None:
        if not paths:
            raise DatasetError("no photos to submit")
        self._photos = [(path.name, path.read_bytes()) for path in paths]
        self._tag = tag
        self._pad_to = pad_to
        self._counter = itertools.count()

    def __iter__(self) -> Iterator[Photo]:
        return self

    def __next__(self) -> Photo:
        serial = next(self._counter)
        name, jpeg = self._photos[serial % len(self._photos)]
        comment = f"weather-mesh proof {self._tag} #{serial}".encode()
        padding = max(0, self._pad_to - len(jpeg) - len(comment))
        return Photo(name, with_comment(jpeg, comment + b"\0" * padding))
