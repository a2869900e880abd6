"""Photo bytes → model input: the ONE preprocessing used by training, evaluation and serving.

Why one function: a model is only as good as the agreement between the pixels it was trained on
and the pixels it is served. Training, `make eval` and the gRPC server all call `preprocess`.

Contract
- Opening (format allow-list, pixel cap on the header, Pillow's errors in our words) is
  `meshkit.images`, shared with the dispatcher's upload check.
- First frame of an animated GIF; EXIF orientation applied; transparency composited on white;
  every mode (grayscale, palette, RGBA, CMYK) converted to RGB.
- Resize policy: the whole frame is squashed to `INPUT_SIZE` x `INPUT_SIZE` (no crop: the sky and
  the horizon are the evidence, and cropping would cut them off). Large JPEGs are decoded at a
  reduced DCT scale (`draft`) to at least twice the target side, which keeps the antialiased
  result visually identical and makes a 12-megapixel photo about 10x cheaper to decode.
- Output: `uint8` array of shape (INPUT_SIZE, INPUT_SIZE, 3); the model rescales inside its graph.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from meshkit.images import (
    DEFAULT_MAX_PIXELS,
    corrupt_image_message,
    decoding,
    is_jpeg,
    open_image,
)

INPUT_SIZE = 128
DRAFT_FACTOR = 2


def to_rgb(image: Image.Image) -> Image.Image:
    """Decode the first frame and convert it to upright RGB, transparency composited on white."""
    image.seek(0)
    if is_jpeg(image):
        target = INPUT_SIZE * DRAFT_FACTOR
        image.draft("RGB", (target, target))
    image.load()
    image = ImageOps.exif_transpose(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def preprocess(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Photo bytes → `uint8` array (INPUT_SIZE, INPUT_SIZE, 3).

    Raises `meshkit.images.UnreadableImageError` (or its `ImageTooLargeError`)."""
    image = open_image(data, max_pixels)
    try:
        with decoding(corrupt_image_message(image) + " ({error})"):
            rgb = to_rgb(image)
            resized = rgb.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)
    finally:
        image.close()
    return np.asarray(resized, dtype=np.uint8)
