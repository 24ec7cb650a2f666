"""Examples, the seeded stratified split, duplicate removal, manifest, augmentation."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from champipy.images import sha256_hex
from champipy.model.data import (
    Example,
    augment,
    augment_rng,
    cross_validation_folds,
    examples_from_folder,
    load_examples,
    manifest,
    stratified_split,
)
from champipy.model.preprocess import resize_and_crop
from champipy.services.lifecycle import stored_examples
from champipy.store import open_store
from champipy.store.base import LabelSource, NewImage


def example(label: str, content: bytes) -> Example:
    return Example(sha256_hex(content), label, "folder", lambda: content)


def test_folder_examples_are_labelled_by_sub_folder(train_dir: Path) -> None:
    examples = examples_from_folder(train_dir)
    labels = Counter(e.label for e in examples)
    assert len(labels) == 10 and sum(labels.values()) == len(examples) >= 900
    first = examples[0]
    assert sha256_hex(first.read()) == first.sha256 and first.source == "folder"


def test_split_is_stratified_and_seeded() -> None:
    items = [example(label, f"{label}-{i}".encode()) for label in "abc" for i in range(10)]
    split = stratified_split(items, 0.2, seed=3)
    assert Counter(e.label for e in split.val) == {"a": 2, "b": 2, "c": 2}
    assert len(split.train) == 24 and split.duplicates_removed == 0
    again = stratified_split(items, 0.2, seed=3)
    assert [e.sha256 for e in again.val] == [e.sha256 for e in split.val]
    other = stratified_split(items, 0.2, seed=4)
    assert [e.sha256 for e in other.val] != [e.sha256 for e in split.val]


def test_validation_prefers_images_the_base_model_never_saw() -> None:
    items = [example(label, f"{label}-{i}".encode()) for label in "ab" for i in range(10)]
    new_b = {sha256_hex(b"b-8"), sha256_hex(b"b-9")}
    seen = {e.sha256 for e in items} - new_b  # all of "a", and "b" but its two new photos
    for seed in range(5):
        split = stratified_split(items, 0.2, seed=seed, seen=seen)
        assert {e.sha256 for e in split.val if e.label == "b"} == new_b
        # "a" has no new photo: its validation images can only be ones the base saw
        assert Counter(e.label for e in split.val) == {"a": 2, "b": 2}
        assert sorted(e.sha256 for e in split.train + split.val) == sorted(e.sha256 for e in items)


def test_same_bytes_never_validate_against_themselves() -> None:
    # every image of "a" has the same bytes: whichever go to validation are also in training
    items = [example("a", b"same") for _ in range(10)] + [example("b", f"b{i}".encode()) for i in range(10)]
    split = stratified_split(items, 0.2, seed=0)
    train_hashes = {e.sha256 for e in split.train}
    assert not any(e.sha256 in train_hashes for e in split.val)
    assert split.duplicates_removed == 2 and {e.label for e in split.val} == {"b"}


def test_cross_validation_folds_partition_the_images() -> None:
    items = [example(label, f"{label}-{i}".encode()) for label in "ab" for i in range(10)]
    items.append(example("a", b"a-0"))  # the same bytes as another "a" image
    folds = cross_validation_folds(items, folds=5, seed=0)
    assert len(folds) == 5
    held_out = [e for fold in folds for e in fold.val]
    assert sum(fold.duplicates_removed for fold in folds) == 2  # both copies of a-0
    assert len(held_out) == len(items) - 2 and len({id(e) for e in held_out}) == len(held_out)
    for fold in folds:
        assert not {e.sha256 for e in fold.val} & {e.sha256 for e in fold.train}
        assert len(fold.train) + len(fold.val) + fold.duplicates_removed == len(items)


def test_single_image_species_stays_in_training() -> None:
    items = [example("lonely", b"x")] + [example("b", f"b{i}".encode()) for i in range(5)]
    split = stratified_split(items, 0.2, seed=0)
    assert [e.label for e in split.train].count("lonely") == 1


def test_manifest_lists_hash_label_source_split(tiny_examples: list) -> None:
    split = stratified_split(tiny_examples, 0.2, seed=0)
    rows = manifest(split)
    assert len(rows) == len(split.train) + len(split.val)
    assert set(rows[0]) == {"sha256", "label", "source", "split"}
    assert {r["split"] for r in rows} == {"train", "val"}


def test_store_examples_read_bytes_from_the_store(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        for i, label in enumerate(["a", "b", "a"]):
            buffer = io.BytesIO()
            Image.new("RGB", (40, 30), (i * 50, 0, 0)).save(buffer, "PNG")
            data = buffer.getvalue()
            store.add_image(NewImage(sha256_hex(data), data, label, LabelSource.CONFIRMED))
        examples = stored_examples(store, limit=10)
        assert len(examples) == 3 and {e.source for e in examples} == {"confirmed"}
        for e in examples:
            assert sha256_hex(e.read()) == e.sha256
        loaded = load_examples(examples, 32)
        assert [item.centre.shape for item in loaded] == [(32, 32, 3)] * 3
    finally:
        store.close()


def test_unreadable_images_are_skipped() -> None:
    good = io.BytesIO()
    Image.new("RGB", (50, 50)).save(good, "JPEG")
    items = [example("a", b"not an image"), example("a", good.getvalue())]
    assert len(load_examples(items, 32)) == 1


def test_loaded_centre_is_the_serving_crop(tiny_examples: list) -> None:
    item = load_examples(tiny_examples[:1], 224)[0]
    opened = Image.open(io.BytesIO(tiny_examples[0].read()))
    assert np.array_equal(item.centre, np.asarray(resize_and_crop(opened, 224)))


def test_augmentation_is_seeded_and_varied() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))
    a = augment(image, 64, augment_rng(1, 2, 3))
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, augment(image, 64, augment_rng(1, 2, 3)))
    assert not np.array_equal(a, augment(image, 64, augment_rng(1, 2, 4)))
