"""Training examples: where they come from, how they are split, how they are augmented.

NumPy and Pillow only (no torch), so the manifest and split logic can be used anywhere.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

from ..errors import ChampipyError, InvalidInput
from ..images import ImageLimits, decode_image, sha256_hex
from .preprocess import RESAMPLE, resize_and_crop, resize_short_side

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
FOLDER_SOURCE = "folder"


@dataclass(frozen=True)
class Example:
    sha256: str
    label: str
    source: str  # "folder", or the store's label source (confirmed / predicted / imported)
    read: Callable[[], bytes | None] = field(compare=False, repr=False)


def examples_from_folder(folder: Path | str) -> list[Example]:
    """One example per image file in each species sub-folder (the folder name is the label)."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a folder of species sub-folders.")
    examples = []
    for species_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(species_dir.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                data = path.read_bytes()
                examples.append(Example(sha256_hex(data), species_dir.name, FOLDER_SOURCE, path.read_bytes))
    if not examples:
        raise InvalidInput(f"No images found in the species sub-folders of {root}.")
    return examples


@dataclass
class LoadedExample:
    example: Example
    centre: np.ndarray  # uint8 (size, size, 3): exactly what serving feeds the model
    image: Image.Image | None  # RGB, short side at most 2 x size: the source of augmented views

    @property
    def label(self) -> str:
        return self.example.label

    @property
    def sha256(self) -> str:
        return self.example.sha256

    @property
    def source(self) -> str:
        return self.example.source


def load_examples(
    examples: Iterable[Example], size: int, max_pixels: int = 40_000_000, keep_images: bool = True
) -> list[LoadedExample]:
    """Decode every example once; unreadable images are skipped with a warning. Without
    ``keep_images`` only the centre crops are kept (no augmentation possible, less memory)."""
    loaded = []
    for example in examples:
        try:
            data = example.read()
            if data is None:
                raise ChampipyError("missing bytes")
            image = decode_image(data, ImageLimits(max_pixels=max_pixels)).image
        except ChampipyError as exc:
            log.warning("Skipping image %s (%s): %s", example.sha256[:12], example.label, exc)
            continue
        centre = np.asarray(resize_and_crop(image, size))
        if keep_images and min(image.size) > 2 * size:
            image = resize_short_side(image, 2 * size)  # random crops need no more pixels
        loaded.append(LoadedExample(example, centre, image if keep_images else None))
    return loaded


@dataclass(frozen=True)
class Split:
    train: list
    val: list
    duplicates_removed: int  # validation images whose bytes also occur in training


def stratified_split(
    items: Sequence, val_fraction: float = 0.2, seed: int = 0, seen: Collection[str] = frozenset()
) -> Split:
    """Per species, a seeded ``val_fraction`` goes to validation (species with a single image
    stay in training); validation images whose SHA-256 also occurs in training are dropped.

    Images whose SHA-256 is in ``seen`` (those a base model already trained on) go to
    validation only when a species has too few others: a fine-tune validated on its base's own
    training photos looks better than it is."""
    by_label: dict[str, list] = defaultdict(list)
    for item in items:
        by_label[item.label].append(item)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted(by_label):
        group = by_label[label]
        order = sorted(rng.permutation(len(group)), key=lambda i: group[i].sha256 in seen)  # stable
        n_val = min(len(group) - 1, max(1, round(len(group) * val_fraction))) if val_fraction > 0 else 0
        val += [group[i] for i in order[:n_val]]
        train += [group[i] for i in order[n_val:]]
    train_hashes = {item.sha256 for item in train}
    kept = [item for item in val if item.sha256 not in train_hashes]
    return Split(train=train, val=kept, duplicates_removed=len(val) - len(kept))


def cross_validation_folds(items: Sequence, folds: int = 5, seed: int = 0) -> list[Split]:
    """``folds`` stratified splits whose validation parts partition the items (each holds
    ~1/folds of every species); as in ``stratified_split``, validation images whose bytes also
    occur in that fold's training part are dropped."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        by_label[item.label].append(index)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(items), dtype=np.int64)
    for label in sorted(by_label):
        group = np.array(by_label[label])[rng.permutation(len(by_label[label]))]
        fold_of[group] = np.arange(len(group)) % folds
    splits = []
    for fold in range(folds):
        train = [item for item, f in zip(items, fold_of, strict=True) if f != fold]
        hashes = {item.sha256 for item in train}
        val = [item for item, f in zip(items, fold_of, strict=True) if f == fold]
        kept = [item for item in val if item.sha256 not in hashes]
        splits.append(Split(train=train, val=kept, duplicates_removed=len(val) - len(kept)))
    return splits


def manifest(split: Split, folds: Sequence[Split] = ()) -> list[dict[str, Any]]:
    """What a run trained and validated on, by content hash. With cross-validation ``folds``,
    each row also says in which fold the image was held out (-1: never, a duplicate)."""
    held_out = {id(item): k for k, fold in enumerate(folds) for item in fold.val}
    rows = []
    for name, items in (("train", split.train), ("val", split.val)):
        for item in items:
            row: dict[str, Any] = {"sha256": item.sha256, "label": item.label, "source": item.source, "split": name}
            if folds:
                row["fold"] = held_out.get(id(item), -1)
            rows.append(row)
    return rows


def label_names(items: Iterable) -> list[str]:
    return sorted({item.label for item in items})


# --- augmentation ------------------------------------------------------------------------

CROP_SCALE = (0.25, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
JITTER = 0.3


def random_resized_crop(image: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    width, height = image.size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*CROP_SCALE)
        ratio = float(np.exp(rng.uniform(np.log(CROP_RATIO[0]), np.log(CROP_RATIO[1]))))
        w, h = round(np.sqrt(target * ratio)), round(np.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            return image.resize((size, size), RESAMPLE, box=(left, top, left + w, top + h))
    return resize_and_crop(image, size)


def colour_jitter(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    enhancers = [ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color]
    for index in rng.permutation(len(enhancers)):
        image = enhancers[index](image).enhance(float(rng.uniform(1 - JITTER, 1 + JITTER)))
    return image


def augment(image: Image.Image, size: int, rng: np.random.Generator) -> np.ndarray:
    """Random resized crop (scale 0.25-1), horizontal flip, brightness/contrast/saturation
    jitter; returns uint8 (size, size, 3)."""
    view = random_resized_crop(image, size, rng)
    if rng.random() < 0.5:
        view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(colour_jitter(view, rng))


def augment_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Each (seed, epoch, image) has its own stream: results do not depend on batch order."""
    return np.random.default_rng((seed, epoch, index))
