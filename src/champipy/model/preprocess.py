"""Image -> model input, shared by training and serving so the two cannot drift.

NumPy and Pillow only: the serving process imports this and must never import torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..images import to_rgb

# EfficientNet-Lite was trained on pixels scaled to [-1, 1] (mean = std = 127.5); ImageNet
# mean/std scaling costs several points of accuracy.
PIXEL_CENTER = 127.5
PIXEL_SCALE = 127.5
RESAMPLE = Image.Resampling.BICUBIC

PREPROCESSING = {
    "resize": "short side to image_size, bicubic (Pillow)",
    "crop": "centre, image_size x image_size",
    "scale": "(x - 127.5) / 127.5",
    "layout": "NCHW float32 RGB",
}


def resize_short_side(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    scale = size / min(width, height)
    new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
    if new_size == image.size:
        return image
    return image.resize(new_size, RESAMPLE)


def centre_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def resize_and_crop(image: Image.Image, size: int) -> Image.Image:
    """RGB, short side resized to ``size`` (bicubic), centre ``size`` x ``size`` crop.

    The crop is passed to ``resize`` as its source box, so the pixels are those of resizing the
    whole image and then cropping, without building the resized whole: for a long thin image
    that intermediate alone would be gigabytes.
    """
    image = to_rgb(image)
    width, height = image.size
    scale = size / min(width, height)
    new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
    left, top = (new_width - size) // 2, (new_height - size) // 2
    if (new_width, new_height) == (width, height):
        return image.crop((left, top, left + size, top + size))
    x_step, y_step = width / new_width, height / new_height
    box = (left * x_step, top * y_step, (left + size) * x_step, (top + size) * y_step)
    return image.resize((size, size), RESAMPLE, box=box)


def scale_pixels(pixels: np.ndarray) -> np.ndarray:
    """uint8 HWC (or NHWC) RGB -> float32 CHW (or NCHW) in [-1, 1]."""
    array = (pixels.astype(np.float32) - PIXEL_CENTER) / PIXEL_SCALE
    return np.ascontiguousarray(np.moveaxis(array, -1, -3))


def preprocess_image(image: Image.Image, size: int) -> np.ndarray:
    """One image -> float32 array (3, size, size)."""
    return scale_pixels(np.asarray(resize_and_crop(image, size)))


def preprocess_images(images: Sequence[Image.Image], size: int) -> np.ndarray:
    """Images -> float32 batch (N, 3, size, size)."""
    if not images:
        return np.zeros((0, 3, size, size), dtype=np.float32)
    return scale_pixels(np.stack([np.asarray(resize_and_crop(image, size)) for image in images]))
