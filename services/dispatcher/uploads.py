"""What Submit accepts: a size cap before anything is decoded, then a real decode.

Why decode fully here rather than trust the header: a truncated JPEG has a perfect header.
Decoding at the door turns "the classifier failed later" into an immediate
INVALID_ARGUMENT the client can act on. JPEGs are decoded at the smallest DCT scale (1/8):
every byte of the entropy-coded data is still read, so truncation and corruption are
caught, at a fraction of a full decode's cost (the classifier decodes again anyway).

Animated images (GIF, WebP) are accepted and classified by their first frame, as
training does (the dataset itself holds an animated GIF).
"""

from __future__ import annotations

import hashlib

from PIL import Image

from services.classifier.preprocess import (
    ALLOWED_FORMATS,
    ImageTooLargeError,
    UnreadableImageError,
    open_image,
)


class UploadTooLargeError(ValueError):
    """More bytes than the dispatcher accepts; refused before decoding."""


class InvalidImageError(ValueError):
    """Not a photo the mesh can classify; the message says why in plain words."""


def check_upload(image: bytes, max_upload_bytes: int, max_pixels: int) -> str:
    """Validate the upload and return its hex sha256. Raises UploadTooLargeError or
    InvalidImageError."""
    if len(image) > max_upload_bytes:
        raise UploadTooLargeError(
            f"the photo is {len(image)} bytes; the limit is {max_upload_bytes} bytes"
        )
    if not image:
        raise InvalidImageError("the photo is empty (0 bytes)")
    accepted = ", ".join(ALLOWED_FORMATS)
    try:
        opened = open_image(image, max_pixels)
    except ImageTooLargeError as error:
        raise InvalidImageError(f"the photo is too large to decode safely: {error}") from error
    except UnreadableImageError as error:
        raise InvalidImageError(
            f"the file is not a supported image (accepted formats: {accepted})"
        ) from error
    try:
        opened.seek(0)
        if opened.format == "JPEG":
            opened.draft(opened.mode, (1, 1))
        opened.load()
    except Image.DecompressionBombError as error:
        raise InvalidImageError(f"the photo is too large to decode safely: {error}") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise InvalidImageError(
            f"the {opened.format} image is corrupt or truncated and cannot be decoded"
        ) from error
    finally:
        opened.close()
    return hashlib.sha256(image).hexdigest()
