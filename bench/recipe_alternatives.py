"""Recipes the product's TrainConfig cannot express, measured on the same folds as
bench_recipes.py: a small MLP head instead of the logistic regression, and three crops along the
long side (each with its mirror) instead of the centre crop and its mirror.

Both use the served lite0+lite2 features (the same ONNX feature extractor as training) and the
same cross-validation folds per seed as ``train_model``, so their out-of-fold answers pair photo
by photo with the baseline's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from bench_recipes import Outcome, mean_interval, paired_interval, per_photo_rate
from PIL import Image
from torch import nn

from champipy.model.backbone import SpeciesNet
from champipy.model.data import cross_validation_folds, label_names, load_examples
from champipy.model.preprocess import RESAMPLE, scale_pixels
from champipy.model.train import OnnxFeatureExtractor, _fit_logistic_regression

BACKBONE = "lite0+lite2"
HEAD_L2 = 1e-2  # TrainConfig's


def long_side_crops(image: Image.Image, size: int) -> list[np.ndarray]:
    """The two end crops (left and right, or top and bottom) of the short side resized to ``size``;
    with the centre crop they cover the whole photo."""
    width, height = image.size
    scale = size / min(width, height)
    new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
    crops = []
    for end in (0.0, 1.0):
        left = round((new_width - size) * end) if new_width > new_height else (new_width - size) // 2
        top = round((new_height - size) * end) if new_height >= new_width else (new_height - size) // 2
        x, y = width / new_width, height / new_height
        box = (left * x, top * y, (left + size) * x, (top + size) * y)
        crops.append(np.asarray(image.resize((size, size), RESAMPLE, box=box)))
    return crops


def view_features(items: list, extract: OnnxFeatureExtractor, size: int) -> dict[str, np.ndarray]:
    views: dict[str, list[np.ndarray]] = {name: [] for name in ("centre", "mirror", "a", "aM", "b", "bM")}
    for item in items:
        a, b = long_side_crops(item.image, size)
        for name, pixels in (("centre", item.centre), ("a", a), ("b", b)):
            views[name].append(pixels)
            views[f"{name}M" if name != "centre" else "mirror"].append(np.ascontiguousarray(pixels[:, ::-1]))
    return {
        name: np.concatenate([extract(scale_pixels(np.stack(arrays[i : i + 32]))) for i in range(0, len(arrays), 32)])
        for name, arrays in views.items()
    }


def logistic(x: np.ndarray, y: np.ndarray, classes: int) -> Callable[[np.ndarray], np.ndarray]:
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    head, _, _ = _fit_logistic_regression((x - mean) / std, y, classes, HEAD_L2, True)
    return lambda v: head(torch.from_numpy(((v - mean) / std).astype(np.float32))).detach().double().numpy()


def mlp(x: np.ndarray, y: np.ndarray, classes: int, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """One hidden layer of 512, dropout, AdamW with a one-cycle schedule, label smoothing."""
    torch.manual_seed(seed)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    net = nn.Sequential(
        nn.Dropout(0.2), nn.Linear(x.shape[1], 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, classes)
    )
    features = torch.from_numpy(((x - mean) / std).astype(np.float32))
    targets = torch.from_numpy(y)
    epochs, batch = 40, 64
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 1e-3, total_steps=epochs * -(-len(y) // batch))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        for index in torch.randperm(len(y), generator=generator).split(batch):
            loss = F.cross_entropy(net(features[index]), targets[index], label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    net.eval()
    return lambda v: net(torch.from_numpy(((v - mean) / std).astype(np.float32))).detach().double().numpy()


def cv_hits(
    items: list,
    y: np.ndarray,
    features: dict[str, np.ndarray],
    train_views: list[str],
    test_views: list[str],
    head: str,
    seeds: list[int],
) -> dict[int, dict[str, bool]]:
    """Seed -> photo SHA-256 -> whether its out-of-fold answer was right, on ``train_model``'s
    folds: the head (``logistic`` or ``mlp``) learns the training views of 4 folds and averages
    its logits over the test views of the fifth."""
    classes = int(y.max()) + 1
    position = {id(item): i for i, item in enumerate(items)}
    hits: dict[int, dict[str, bool]] = {}
    for seed in seeds:
        hits[seed] = {}
        for fold in cross_validation_folds(items, 5, seed):
            train = np.array([position[id(item)] for item in fold.train])
            held = np.array([position[id(item)] for item in fold.val])
            x = np.concatenate([features[v][train] for v in train_views])
            targets = np.tile(y[train], len(train_views))
            predict = logistic(x, targets, classes) if head == "logistic" else mlp(x, targets, classes, seed)
            logits = np.mean([predict(features[v][held]) for v in test_views], axis=0)
            for row, right in zip(held, logits.argmax(axis=1) == y[held], strict=True):
                hits[seed][items[row].sha256] = bool(right)
    return hits


def alternatives(examples: list, seeds: list[int], baseline: Outcome) -> list[dict[str, Any]]:
    model = SpeciesNet(BACKBONE, 2).eval()
    size = model.image_size
    items = load_examples(examples, size, keep_images=True)
    labels = label_names(items)
    y = np.array([labels.index(item.label) for item in items])
    features = view_features(items, OnnxFeatureExtractor(model), size)
    recipes: dict[str, tuple[list[str], list[str], str]] = {
        "lite0+lite2, mirror (logistic, this harness)": (["centre"], ["centre", "mirror"], "logistic"),
        "lite0+lite2, mirror, MLP head": (["centre", "mirror"], ["centre", "mirror"], "mlp"),
        "lite0+lite2, three crops + mirrors": (["centre", "mirror", "a", "aM", "b", "bM"],) * 2 + ("logistic",),
    }
    rows = []
    for name, (train_views, test_views, head) in recipes.items():
        hits = cv_hits(items, y, features, train_views, test_views, head, seeds)
        for seed in seeds:
            print(f"  {name} seed {seed}: CV top-1 {np.mean(list(hits[seed].values())):.4f}", flush=True)
        rows.append(row(name, Outcome(baseline.config, hits=hits), baseline))
    return rows


def row(name: str, outcome: Outcome, baseline: Outcome) -> dict[str, Any]:
    """A table row of bench_recipes for out-of-fold hits measured outside ``train_model``."""
    hits = outcome.hits
    seeds = sorted(hits)
    photos = sorted(set.intersection(*(set(h) for h in hits.values())))
    shared = [p for p in photos if all(p in h for h in baseline.hits.values())]
    difference = paired_interval(per_photo_rate(outcome, shared), per_photo_rate(baseline, shared))
    rate = per_photo_rate(outcome, photos)
    own = mean_interval(rate)
    return {
        "recipe": name,
        "photos": len(photos),
        "seeds": seeds,
        "cv_top1": float(rate.mean()),
        "cv_top1_seeds": [float(np.mean([hits[s][p] for p in photos])) for s in seeds],
        "cv_top1_interval": [own[1], own[2]],
        "vs_baseline": difference[0],
        "vs_baseline_interval": [difference[1], difference[2]],
        "cv_ece": None,
        "train_seconds": None,  # the features are shared: only the heads were fitted here
        "inference_ms": None,
        "eval": {},
        "hits": {str(seed): h for seed, h in hits.items()},
    }
