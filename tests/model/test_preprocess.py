"""Preprocessing is shared by training and serving: odd image files must come out as the
same well-formed model input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from champipy.images import decode_image
from champipy.model.preprocess import preprocess_image, preprocess_images, resize_and_crop, to_rgb

SIZE = 224
EXIF_ORIENTATION = 0x0112


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def landscape() -> Image.Image:
    """Red left half, blue right half, 300x200."""
    pixels = np.zeros((200, 300, 3), dtype=np.uint8)
    pixels[:, :150] = (255, 0, 0)
    pixels[:, 150:] = (0, 0, 255)
    return Image.fromarray(pixels)


def check_input(array: np.ndarray) -> None:
    assert array.shape == (3, SIZE, SIZE)
    assert array.dtype == np.float32
    assert array.min() >= -1.0 and array.max() <= 1.0


@pytest.mark.parametrize("source", ["decoded", "opened"])
def test_grayscale_becomes_three_equal_channels(source: str) -> None:
    data = encoded(Image.new("L", (320, 240), 100), "JPEG")
    image = decode_image(data).image if source == "decoded" else Image.open(io.BytesIO(data))
    array = preprocess_image(image, SIZE)
    check_input(array)
    assert np.array_equal(array[0], array[1]) and np.array_equal(array[1], array[2])


def test_cmyk_jpeg_is_converted_to_rgb() -> None:
    data = encoded(Image.new("CMYK", (300, 300), (0, 255, 255, 0)), "JPEG")  # red in CMYK
    for image in (decode_image(data).image, Image.open(io.BytesIO(data))):
        array = preprocess_image(image, SIZE)
        check_input(array)
        red, green, blue = (array[c].mean() for c in range(3))
        assert red > 0.8 and green < -0.8 and blue < -0.8


def test_png_alpha_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (256, 256), (0, 0, 0, 0))  # fully transparent black
    rgba.paste((0, 128, 0, 255), (0, 0, 128, 256))  # opaque green left half
    data = encoded(rgba, "PNG")
    for image in (decode_image(data).image, Image.open(io.BytesIO(data))):
        array = preprocess_image(image, SIZE)
        check_input(array)
        assert np.allclose(array[:, :, -20:], 1.0)  # transparent right side: white, not black
        assert array[1, :, :20].mean() > 0 and array[0, :, :20].mean() < -0.9


def test_exif_rotation_is_applied() -> None:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # "rotate 90 degrees clockwise to display"
    data = encoded(landscape(), "JPEG", exif=exif.tobytes(), quality=95)
    upright = landscape().transpose(Image.Transpose.ROTATE_270)  # what a viewer shows
    expected = preprocess_image(upright, SIZE)
    for image in (decode_image(data).image, Image.open(io.BytesIO(data))):
        assert image.size in ((200, 300), (300, 200))
        array = preprocess_image(image, SIZE)
        check_input(array)
        # Red ends up on top after the rotation: compare the colour layout, not JPEG noise.
        assert np.abs(array - expected).mean() < 0.05
        assert array[0, :40].mean() > 0.8 and array[2, -40:].mean() > 0.8


def test_resize_short_side_then_centre_crop() -> None:
    cropped = resize_and_crop(landscape(), SIZE)
    assert cropped.size == (SIZE, SIZE)
    tall = Image.new("RGB", (100, 400), (10, 20, 30))
    assert resize_and_crop(tall, SIZE).size == (SIZE, SIZE)


def test_batch_matches_single_images() -> None:
    images = [landscape(), Image.new("L", (500, 300), 7), Image.new("RGBA", (300, 300), (1, 2, 3, 4))]
    batch = preprocess_images(images, SIZE)
    assert batch.shape == (3, 3, SIZE, SIZE)
    for i, image in enumerate(images):
        assert np.array_equal(batch[i], preprocess_image(image, SIZE))
    assert preprocess_images([], SIZE).shape == (0, 3, SIZE, SIZE)


def test_scaling_is_minus_one_to_one() -> None:
    array = preprocess_image(Image.new("RGB", (SIZE, SIZE), (0, 255, 128)), SIZE)
    assert np.allclose(array[0], -1.0) and np.allclose(array[1], 1.0)
    assert np.allclose(array[2], (128 - 127.5) / 127.5)
    assert to_rgb(Image.new("P", (4, 4))).mode == "RGB"
