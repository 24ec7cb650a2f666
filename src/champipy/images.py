"""Turning untrusted bytes into a checked RGB image, and naming images by their content."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import NotAnImage, TooLarge

# Pillow's own bomb check is global state; ours is per call, so we switch its warning off
# and compare sizes ourselves before any pixel is decoded.
Image.MAX_IMAGE_PIXELS = None


_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, EXIF orientation applied
    format: str
    width: int
    height: int


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_image(data: bytes, max_pixels: int = 40_000_000) -> DecodedImage:
    """Decode with Pillow from the bytes alone (never trusting a Content-Type).

    Raises NotAnImage for anything Pillow cannot fully decode and TooLarge for images with
    more than ``max_pixels`` pixels (decompression bombs), checked from the header first.
    """
    if not data:
        raise NotAnImage("The file is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            width, height = probe.size
            if width * height > max_pixels:
                raise TooLarge(
                    f"The image is {width}x{height} pixels; at most {max_pixels:,} pixels are accepted."
                )
            fmt = probe.format or "unknown"
            probe.load()
            image = to_rgb(probe)
    except TooLarge:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning, EOFError) as exc:
        raise NotAnImage("The file is not an image that can be read (JPEG, PNG, WebP, GIF, ...).") from exc
    return DecodedImage(image=image, format=fmt, width=width, height=height)


def to_rgb(image: Image.Image) -> Image.Image:
    """Upright RGB: applies a pending EXIF orientation, composites transparency on white."""
    if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        # Composite transparent areas on white: black (the default) would dominate the photo.
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
