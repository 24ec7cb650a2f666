"""Turning untrusted bytes into a checked RGB image, and naming images by their content."""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import NotAnImage, TooLarge, UnsupportedImageShape

# Pillow's own bomb check is global state; ours is per call, so we switch its warning off
# and compare sizes ourselves before any pixel is decoded.
Image.MAX_IMAGE_PIXELS = None


_EXIF_ORIENTATION = 0x0112

# The formats the web page promises. Pillow is told to try only these decoders, so TIFF, JPEG
# 2000, PSD, ICO, ... parsers never run on untrusted bytes. The JPEG decoder also opens the JPEGs
# of cameras that embed a second picture (Pillow calls them MPO); GIF, APNG and animated WebP
# give their first frame.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
ACCEPTED_FORMATS_TEXT = "JPEG, PNG, WebP or GIF (first frame)"


# No real photo comes near these (the data set: short side >= 71 px, ratio <= 2.3); a 1x100000
# PNG of 470 bytes does, and would make preprocessing build a 260x26,000,000 image.
@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = 40_000_000
    max_aspect_ratio: float = 20.0  # long side / short side
    min_side: int = 16


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, EXIF orientation applied
    format: str
    width: int
    height: int


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_image(
    data: bytes, limits: ImageLimits = ImageLimits(), *, min_short_side: int | None = None
) -> DecodedImage:
    """Decode with Pillow from the bytes alone (never trusting a Content-Type).

    With ``min_short_side``, a JPEG may be decoded at 1/2, 1/4 or 1/8 of its size (the
    decoder's own DCT scaling, Pillow's ``draft``) as long as its short side stays at least that
    long: a 12-megapixel photo then costs about what a 1-megapixel one does, and the model, which
    reads a few hundred pixels, sees the same photo. ``width`` and ``height`` stay the file's.

    Raises NotAnImage for anything that is not a readable image of an accepted format,
    TooLarge for more than ``limits.max_pixels`` pixels (decompression bombs) and UnsupportedImageShape
    for a side under ``limits.min_side`` or a long side more than ``limits.max_aspect_ratio`` times the short
    one; all three are decided from the header, before any pixel is decoded. The pixel cap
    bounds decode memory for every accepted format: at most 4 bytes a pixel while decoding
    plus 3 for the RGB copy.
    """
    if not data:
        raise NotAnImage("The file is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            width, height = probe.size
            _check_size(width, height, limits)
            fmt = probe.format or "unknown"
            if min_short_side and fmt == "JPEG":
                scale = min_short_side / min(width, height)
                if scale <= 0.5:
                    probe.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
            probe.load()
            image = to_rgb(probe)
    except (TooLarge, UnsupportedImageShape):
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        EOFError,
    ) as exc:
        raise NotAnImage(
            f"The file is not an image that can be read; accepted formats: {ACCEPTED_FORMATS_TEXT}."
        ) from exc
    return DecodedImage(image=image, format=fmt, width=width, height=height)


def _check_size(width: int, height: int, limits: ImageLimits) -> None:
    max_pixels, max_aspect_ratio, min_side = limits.max_pixels, limits.max_aspect_ratio, limits.min_side
    if width * height > max_pixels:
        raise TooLarge(f"The image is {width}x{height} pixels; at most {max_pixels:,} pixels are accepted.")
    short, long = min(width, height), max(width, height)
    if short < min_side:
        raise UnsupportedImageShape(
            f"The image is {width}x{height} pixels; each side must be at least {min_side} pixels."
        )
    if long > short * max_aspect_ratio:
        raise UnsupportedImageShape(
            f"The image is {width}x{height} pixels; its long side may be at most {max_aspect_ratio:g} "
            "times its short side."
        )


def bounded_copy(data: bytes, decoded: DecodedImage, max_side: int = 1024, max_bytes: int = 2 * 1024 * 1024) -> bytes:
    """The bytes to keep of a photo: the original when the file is at most ``max_side`` px and
    ``max_bytes`` long (every training photo is), else the decoded image shrunk to fit and
    re-encoded as a JPEG. The model reads 260 px; kept photos need not cost 15 MB each. A photo
    decoded at reduced size (``min_short_side``) is kept at that size when it fits."""
    if max(decoded.width, decoded.height) <= max_side and len(data) <= max_bytes:
        return data
    copy = decoded.image.copy()
    copy.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    copy.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


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
