"""What Submit accepts: a size cap before anything is decoded, then a real decode.

Why decode fully here rather than trust the header: a truncated JPEG has a perfect header.
Decoding at the door turns "the classifier failed later" into an immediate
INVALID_ARGUMENT the client can act on. JPEGs are decoded at the smallest DCT scale (1/8):
every byte of the entropy-coded data is still read, so truncation and corruption are
caught, at a fraction of a full decode's cost (the classifier decodes again anyway).
What a readable photo is (formats, pixel cap, the words of a refusal) is `meshkit.images`.

Animated images (GIF, WebP) are accepted and classified by their first frame, as
training does (the dataset itself holds an animated GIF).
"""

from __future__ import annotations

import hashlib

from meshkit.images import corrupt_image_message, decoding, is_jpeg, open_image


class UploadTooLargeError(ValueError):
    """More bytes than the dispatcher accepts; refused before decoding."""


def check_upload(image: bytes, max_upload_bytes: int, max_pixels: int) -> str:
    """Validate the upload and return its hex sha256. Raises UploadTooLargeError or
    `meshkit.images.UnreadableImageError`."""
    if len(image) > max_upload_bytes:
        raise UploadTooLargeError(
            f"the photo is {len(image)} bytes; the limit is {max_upload_bytes} bytes"
        )
    opened = open_image(image, max_pixels)
    try:
        with decoding(corrupt_image_message(opened)):
            opened.seek(0)
            if is_jpeg(opened):
                opened.draft(opened.mode, (1, 1))
            opened.load()
    finally:
        opened.close()
    return hashlib.sha256(image).hexdigest()
