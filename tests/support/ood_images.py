"""A small out-of-distribution photo set, built offline from what Python packages ship and from
generated pictures, written as category sub-folders (``champipy evaluate --ood DIR`` reads it).

Non-mushroom categories: ``faces``, ``photos`` (everyday scenes and objects), ``textures``,
``microscopy`` (and other scientific images), ``drawings`` (line art, logos, rendered text and
shapes), ``noise`` (noise, gradients, flat colours). With ``mushrooms=`` (a species folder
tree, e.g. the eval set) three categories of *degraded mushroom photos* are added, kept apart
because they are still mushrooms: ``blurred``, ``pixelated``, ``tiny_crops``.

Every picture is seeded: the same call writes the same bytes.

    python tests/support/ood_images.py OUT_DIR [--mushrooms EVAL_DIR]
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

NON_MUSHROOM = ("faces", "photos", "textures", "microscopy", "drawings", "noise")
DEGRADED_MUSHROOM = ("blurred", "pixelated", "tiny_crops")
_SIDE = 320  # about the size of the training photos (MO thumbnails)


def _as_rgb(array: np.ndarray) -> Image.Image:
    array = np.asarray(array)
    if array.dtype != np.uint8:
        low, high = float(array.min()), float(array.max())
        array = ((array - low) / max(high - low, 1e-9) * 255).astype(np.uint8)
    return Image.fromarray(array).convert("RGB")


def _fit(image: Image.Image, side: int = _SIDE) -> Image.Image:
    image = image.convert("RGB")
    scale = side / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC)


def _crops(image: Image.Image, n: int, rng: np.random.Generator) -> Iterator[Image.Image]:
    """The whole picture, then ``n - 1`` random crops of 40-80% of its side."""
    yield _fit(image)
    for _ in range(n - 1):
        share = rng.uniform(0.4, 0.8)
        w, h = max(8, int(image.width * share)), max(8, int(image.height * share))
        x, y = int(rng.integers(0, image.width - w + 1)), int(rng.integers(0, image.height - h + 1))
        yield _fit(image.crop((x, y, x + w, y + h)))


def _packaged() -> dict[str, list[Image.Image]]:
    import matplotlib.cbook
    import skimage.data
    from sklearn.datasets import load_sample_images

    def sample(name: str) -> Image.Image:
        with matplotlib.cbook.get_sample_data(name) as handle:  # type: ignore[attr-defined]
            return Image.open(io.BytesIO(handle.read())).convert("RGB")

    faces = [_as_rgb(skimage.data.astronaut()).crop((140, 20, 340, 230)), sample("grace_hopper.jpg")]
    faces += [_as_rgb(face) for face in skimage.data.lfw_subset()[:100:5]]
    china, flower = (Image.fromarray(image) for image in load_sample_images().images)
    photos = [
        _as_rgb(skimage.data.astronaut()),
        _as_rgb(skimage.data.chelsea()),
        _as_rgb(skimage.data.coffee()),
        _as_rgb(skimage.data.rocket()),
        _as_rgb(skimage.data.camera()),
        _as_rgb(skimage.data.coins()),
        _as_rgb(skimage.data.moon()),
        _as_rgb(skimage.data.clock()),
        _as_rgb(skimage.data.stereo_motorcycle()[0]),
        china,
        flower,
    ]
    textures = [_as_rgb(skimage.data.brick()), _as_rgb(skimage.data.grass()), _as_rgb(skimage.data.gravel())]
    microscopy = [
        _as_rgb(skimage.data.cell()),
        _as_rgb(skimage.data.immunohistochemistry()),
        _as_rgb(skimage.data.microaneurysms()),
        _as_rgb(skimage.data.retina()),
        _as_rgb(skimage.data.hubble_deep_field()),
        _as_rgb(skimage.data.shepp_logan_phantom()),
    ]
    drawings = [
        _as_rgb(skimage.data.horse()),
        _as_rgb(skimage.data.logo()[..., :3]),
        _as_rgb(skimage.data.colorwheel()),
        _as_rgb(skimage.data.text()),
        _as_rgb(skimage.data.page()),
        sample("logo2.png"),
        sample("Minduka_Present_Blue_Pack.png"),
    ]
    return {"faces": faces, "photos": photos, "textures": textures, "microscopy": microscopy, "drawings": drawings}


def _rendered_drawings(rng: np.random.Generator, n: int) -> Iterator[Image.Image]:
    """Shapes and words on a plain background, like a sketch or a diagram."""
    font = ImageFont.load_default(size=28)
    words = ["mushroom", "hello", "Amanita?", "2026", "diagram", "Figure 3", "ok", "test photo"]
    for k in range(n):
        background = tuple(int(v) for v in rng.integers(180, 256, 3))
        image = Image.new("RGB", (_SIDE, _SIDE * 3 // 4), background)
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(2, 7))):
            x0, y0 = (int(v) for v in rng.integers(0, 220, 2))
            x1, y1 = x0 + int(rng.integers(20, 120)), y0 + int(rng.integers(20, 120))
            colour = tuple(int(v) for v in rng.integers(0, 160, 3))
            shape = int(rng.integers(0, 3))
            if shape == 0:
                draw.ellipse((x0, y0, x1, y1), outline=colour, width=3)
            elif shape == 1:
                draw.rectangle((x0, y0, x1, y1), outline=colour, width=3)
            else:
                draw.line((x0, y0, x1, y1), fill=colour, width=4)
        draw.text((20, 20 + 8 * (k % 20)), words[k % len(words)], fill=(20, 20, 20), font=font)
        yield image


def _generated_noise(rng: np.random.Generator, n: int) -> Iterator[Image.Image]:
    shape = (_SIDE * 3 // 4, _SIDE)
    makers: list[Callable[[], np.ndarray]] = [
        lambda: rng.integers(0, 256, (*shape, 3)),  # uniform colour noise
        lambda: np.clip(rng.normal(128, 40, (*shape, 3)), 0, 255),  # Gaussian noise
        lambda: np.repeat(rng.integers(0, 2, (*shape, 1)) * 255, 3, axis=2),  # salt and pepper
        lambda: np.stack(  # a linear gradient between two colours
            [np.linspace(rng.integers(0, 256), rng.integers(0, 256), shape[1])[None, :].repeat(shape[0], 0)] * 3,
            axis=2,
        ),
        lambda: np.ones((*shape, 3)) * rng.integers(0, 256, 3),  # a flat colour
        lambda: np.kron(rng.integers(0, 256, (6, 8, 3)), np.ones((40, 40, 1))),  # big colour blocks
    ]
    for k in range(n):
        yield _as_rgb(makers[k % len(makers)]().astype(np.uint8))


def _degraded(mushrooms: Path, rng: np.random.Generator, per_kind: int) -> dict[str, list[Image.Image]]:
    photos = sorted(p for p in mushrooms.glob("*/*") if p.is_file())
    chosen = [photos[i] for i in sorted(rng.choice(len(photos), size=min(per_kind, len(photos)), replace=False))]
    out: dict[str, list[Image.Image]] = {kind: [] for kind in DEGRADED_MUSHROOM}
    for path in chosen:
        image = _fit(Image.open(path))
        out["blurred"].append(image.filter(ImageFilter.GaussianBlur(radius=12)))
        out["pixelated"].append(image.resize((8, 6), Image.BILINEAR).resize(image.size, Image.NEAREST))
        x, y = int(rng.integers(0, image.width - 24)), int(rng.integers(0, image.height - 24))
        out["tiny_crops"].append(image.crop((x, y, x + 24, y + 24)).resize((_SIDE, _SIDE), Image.BICUBIC))
    return out


def write_ood_set(root: Path, mushrooms: Path | None = None, seed: int = 0, crops: int = 4) -> dict[str, int]:
    """Write the set under ``root/<category>/NNN.png``; returns the count per category."""
    rng = np.random.default_rng(seed)
    categories: dict[str, list[Image.Image]] = {}
    for category, images in _packaged().items():
        per_image = 1 if category == "faces" else crops
        categories[category] = [crop for image in images for crop in _crops(image, per_image, rng)]
    categories["drawings"] += list(_rendered_drawings(rng, 16))
    categories["noise"] = list(_generated_noise(rng, 24))
    if mushrooms is not None:
        categories.update(_degraded(mushrooms, rng, per_kind=30))
    counts = {}
    for category, images in categories.items():
        folder = root / category
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            image.save(folder / f"{i:03d}.png")
        counts[category] = len(images)
    return counts


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--mushrooms", type=Path, help="species folders to degrade (e.g. the eval set)")
    args = parser.parse_args()
    print(write_ood_set(args.out, args.mushrooms))


def one_of_each() -> dict[str, Image.Image]:
    """The four pictures the behaviour tests name: a face, a brick wall, a drawing, pure noise."""
    import matplotlib.cbook
    import skimage.data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:  # type: ignore[attr-defined]
        face = Image.open(io.BytesIO(handle.read())).convert("RGB")
    rng = np.random.default_rng(0)
    return {
        "face": _fit(face),
        "brick": _fit(_as_rgb(skimage.data.brick())),
        "drawing": next(_rendered_drawings(rng, 1)),
        "noise": _as_rgb(rng.integers(0, 256, (240, 320, 3)).astype(np.uint8)),
    }
