"""What Submit accepts: a size cap, the header, and a cheap check that the photo is whole.

Why not decode here: the classifier decodes every photo anyway, and a decode at the door
cost the dispatcher a fifth of its CPU (py-spy, `make bench`), on the same cores as the
model. The door still refuses at once, with INVALID_ARGUMENT the client can act on, what is
not a photo (format allow-list), too many pixels (from the header) and a JPEG or PNG cut
short on the way (no end marker after its image data: `meshkit.images.check_complete`).
What passes and still cannot be decoded (bytes damaged in the middle) fails its job at the
classifier, clearly: FAILED, "the JPEG image is corrupt or truncated…", the same words.
What a readable photo is (formats, pixel cap, the words of a refusal) is `meshkit.images`.

Animated images (GIF, WebP) are accepted and classified by their first frame, as
training does (the dataset itself holds an animated GIF).
"""

from __future__ import annotations

import hashlib

from meshkit.images import check_complete, open_image


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
        check_complete(opened, image)
    finally:
        opened.close()
    return hashlib.sha256(image).hexdigest()
