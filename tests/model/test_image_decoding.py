"""What decode_image lets through: only the promised formats, and only shapes a photo can have,
decided from the header before a pixel is decoded."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from champipy.errors import NotAnImage, TooLarge, UnsupportedImageShape
from champipy.images import ImageLimits, decode_image
from champipy.model.preprocess import centre_crop, resize_and_crop, resize_short_side


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_promised_formats_decode(fmt: str) -> None:
    decoded = decode_image(encoded(noise(64, 48), fmt))
    assert decoded.format == fmt and decoded.image.mode == "RGB" and decoded.image.size == (64, 48)


@pytest.mark.parametrize("fmt", ["TIFF", "JPEG2000", "PPM", "TGA", "ICO", "BMP", "PCX", "SGI"])
def test_other_pillow_formats_are_refused_with_the_list(fmt: str) -> None:
    data = encoded(noise(64, 48), fmt)
    assert Image.open(io.BytesIO(data)).format  # Pillow itself would read it
    with pytest.raises(NotAnImage) as refused:
        decode_image(data)
    assert "JPEG, PNG, WebP or GIF" in refused.value.detail


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    red, green, blue = decode_image(buffer.getvalue()).image.getpixel((16, 16))
    assert red > 200 and blue < 50


@pytest.mark.parametrize("size", [(1, 100_000), (100_000, 1), (15, 300), (300, 15), (16, 321), (1000, 49)])
def test_thin_or_tiny_images_are_refused_from_the_header(size: tuple[int, int]) -> None:
    data = encoded(Image.new("L", size), "PNG")
    with pytest.raises(UnsupportedImageShape):
        decode_image(data)


@pytest.mark.parametrize("size", [(16, 16), (16, 320), (320, 16), (4000, 200)])
def test_shapes_at_the_limits_are_accepted(size: tuple[int, int]) -> None:
    assert decode_image(encoded(Image.new("L", size), "PNG")).image.size == size


def test_limits_come_from_the_caller() -> None:
    data = encoded(Image.new("L", (100, 10)), "PNG")
    assert decode_image(data, ImageLimits(max_aspect_ratio=10.0, min_side=10)).width == 100
    with pytest.raises(TooLarge):
        decode_image(data, ImageLimits(max_pixels=999))


@pytest.mark.parametrize("size", [(320, 240), (160, 120), (261, 3000), (4000, 3000), (1000, 50), (333, 261)])
def test_crop_inside_the_resize_gives_the_pixels_of_resize_then_crop(size: tuple[int, int]) -> None:
    image = noise(*size, seed=size[0])
    direct = np.asarray(resize_and_crop(image, 260)).astype(int)
    two_steps = np.asarray(centre_crop(resize_short_side(image, 260), 260)).astype(int)
    assert direct.shape == (260, 260, 3)
    # Pillow's filter weights come out a rounding apart for the shifted source box.
    assert np.abs(direct - two_steps).max() <= 1
    assert (direct != two_steps).mean() < 0.005


# --- decoding a large JPEG at the size the model needs ------------------------------------------
def smooth_photo(width: int, height: int) -> Image.Image:
    """Low-frequency content, like a photo's: what any good downscale keeps."""
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    channels = [np.sin(2 * np.pi * (x * f1 + y * f2)) for f1, f2 in ((1.5, 0.5), (0.7, 2.1), (2.5, 1.1))]
    return Image.fromarray(((np.stack(channels, -1) + 1) * 127.5).astype(np.uint8))


def test_a_large_jpeg_is_decoded_reduced_but_never_below_the_short_side_asked():
    data = encoded(smooth_photo(4000, 3000), "JPEG", quality=90)
    reduced = decode_image(data, min_short_side=260)
    assert reduced.image.size == (500, 375)  # 1/8: the smallest scale keeping >= 260 px
    assert (reduced.width, reduced.height) == (4000, 3000)  # what the file holds
    assert decode_image(data, min_short_side=400).image.size == (1000, 750)  # 1/4
    assert decode_image(data).image.size == (4000, 3000)  # not asked: full size


def test_only_jpegs_that_are_at_least_twice_as_large_are_reduced():
    assert decode_image(encoded(smooth_photo(640, 480), "JPEG"), min_short_side=260).image.size == (640, 480)
    assert decode_image(encoded(smooth_photo(2000, 1500), "PNG"), min_short_side=260).image.size == (2000, 1500)


def test_the_model_input_from_a_reduced_decode_matches_the_full_one():
    data = encoded(smooth_photo(4000, 3000), "JPEG", quality=90)
    full = np.asarray(resize_and_crop(decode_image(data).image, 260), dtype=np.float32)
    reduced = np.asarray(resize_and_crop(decode_image(data, min_short_side=260).image, 260), dtype=np.float32)
    assert np.abs(full - reduced).mean() < 1.0  # of 255: the same picture
