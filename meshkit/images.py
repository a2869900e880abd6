"""Opening an uploaded photo safely, and the one translation of Pillow's failures into ours.

Why here, in the kit: the dispatcher validates a photo at the door and the classifier decodes
it again for the model; both must accept and refuse exactly the same bytes, for the same
reasons, in the same words. So the format allow-list, the pixel cap read from the header and
the mapping of Pillow's many exception types live once, here.

- Decode by content, never by file name, and only `ALLOWED_FORMATS`, so formats with risky
  decoders (EPS → Ghostscript, …) are never tried.
- The pixel count is checked on the header, before any pixel is decoded (decompression bombs).
- Every refusal is an `UnreadableImageError` (a client's mistake) whose message is a plain
  sentence; `ImageTooLargeError` is the subclass for "too many pixels".
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image, ImageFile

ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP")
JPEG_FORMATS = frozenset({"JPEG", "MPO"})
"""Pillow opens a multi-picture JPEG (MPO: phones' stereo and depth shots) as "MPO"; its first
picture is a plain JPEG, decoded the same cheap way (reduced DCT scale)."""
END_MARKERS = {"JPEG": b"\xff\xd9", "MPO": b"\xff\xd9", "PNG": b"IEND"}
"""What a whole JPEG (EOI) or PNG (the IEND chunk) has after its image data: a file cut
short on the way has not, and is the common way an upload is broken."""
_JPEG_SOS = 0xDA
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})
"""TEM, RST0-7, SOI, EOI: markers without a length field."""
DEFAULT_MAX_PIXELS = 25_000_000
"""The pixel cap, read from the header before any decode. The model sees 128x128; 25 MP
admits every photo a camera or phone takes by default (a 24 MP DSLR is 6000x4000; the
dataset's largest is 15 MP) while bounding one full decode (PNG, GIF, WebP, BMP have no
reduced-scale decode) to 75 MB of RGB, ~100 MB with alpha."""

_PILLOW_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)
_TOO_LARGE = "the photo is too large to decode safely: {error}"


class UnreadableImageError(ValueError):
    """The bytes are not a photo we can read: empty, not an image, truncated, or an
    unsupported format. The message says which, in plain words."""


class ImageTooLargeError(UnreadableImageError):
    """The photo has more pixels than allowed; refused before decoding."""


@contextmanager
def decoding(corrupt_message: str) -> Iterator[None]:
    """Run Pillow code and turn its failures into ours: a decompression bomb becomes
    ImageTooLargeError, anything else Pillow raises on bad data becomes
    UnreadableImageError(`corrupt_message`, formatted with `error=`)."""
    try:
        yield
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(_TOO_LARGE.format(error=error)) from error
    except _PILLOW_DECODE_ERRORS as error:
        raise UnreadableImageError(corrupt_message.format(error=error)) from error


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open `data` lazily (header only) and refuse it if it has more than `max_pixels` pixels.

    Pixels are not decoded here: the caller decides when to pay for that (inside
    `decoding(...)`), and closes the image.
    """
    if not data:
        raise UnreadableImageError("not a readable image: the photo is empty (0 bytes)")
    not_an_image = (
        "not a readable image: the file is not a supported image "
        f"(accepted formats: {', '.join(ALLOWED_FORMATS)})"
    )
    with decoding(not_an_image), warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    width, height = image.size
    if width <= 0 or height <= 0:
        image.close()
        raise UnreadableImageError(f"not a readable image: it has an empty size {width}x{height}")
    if width * height > max_pixels:
        image.close()
        raise ImageTooLargeError(
            _TOO_LARGE.format(
                error=f"it is {width}x{height} = {width * height} pixels, "
                f"more than the {max_pixels} allowed"
            )
        )
    return image


def is_jpeg(image: Image.Image) -> bool:
    """A JPEG or a multi-picture JPEG (MPO): both can be decoded at a reduced DCT scale."""
    return image.format in JPEG_FORMATS


def corrupt_image_message(image: Image.Image) -> str:
    """What to tell a client whose photo has a valid header but bad pixel data."""
    return f"the {image.format} image is corrupt or truncated and cannot be decoded"


def check_complete(image: Image.Image, data: bytes) -> None:
    """Refuse `data` (opened as `image`) if it was cut short, without decoding its pixels
    when the format says where it ends: a JPEG needs its EOI marker, a PNG its IEND chunk,
    after the start of the image data (a thumbnail's EOI in the header does not count).
    Other formats (GIF, WebP, BMP: rare uploads) have no such marker and are decoded.

    Cheap, not a proof: bytes damaged in the middle of the image data still pass, and the
    classifier's full decode then fails the job with the same words (FAILED, unreadable
    image). Raises UnreadableImageError."""
    marker = END_MARKERS.get(image.format or "")
    if marker is None:
        with decoding(corrupt_image_message(image)):
            image.seek(0)
            image.load()
        return
    if is_jpeg(image):
        data_start = _jpeg_scan_start(data)
    else:
        tiles = image.tile if isinstance(image, ImageFile.ImageFile) else []
        data_start = tiles[0].offset if tiles else -1
    if data_start < 0 or data.find(marker, data_start) == -1:
        raise UnreadableImageError(corrupt_image_message(image))


def _jpeg_scan_start(data: bytes) -> int:
    """Where the first scan's entropy-coded data starts (after SOS), walking the header's
    length-prefixed segments from SOI; -1 if the header ends first."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return -1
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _STANDALONE_MARKERS:
            position += 2
            continue
        end = position + 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == _JPEG_SOS:
            return end
        position = end
    return -1
