"""How to combine the photos of one observation: top-1 and calibration of each rule for
groups of 1, 2 and 3 eval photos of one species.

    CHAMPIPY_DATASET_DIR=/path/to/train CHAMPIPY_EVAL_DIR=/path/to/eval \\
    python bench/bench_observations.py [--groups 3000] [--cache /tmp/features.npz]

The per-photo probabilities are the default recipe's (frozen lite2 features averaged over the
photo and its mirror, balanced logistic head, temperature fitted on 5 cross-fitted folds of
the training photos). A group is k distinct eval photos of one species (``--groups`` random
groups per k, seeded); eval photos are of different finds, so groups are harder than real
observations, whose photos show one specimen. Rules, on the per-photo probabilities p_i:

- ``mean``: the mean of p_i;
- ``product``: prod p_i, renormalised (naive Bayes under a uniform prior: the training set is
  balanced, so dividing by the prior changes nothing);
- ``geometric``: the renormalised geometric mean, i.e. ``product`` tempered by 1/k;
- ``most_confident``: the photo with the highest top probability alone.

Top-1 comes with a Wilson interval over groups (groups share photos, so read it as rough);
ECE is the expected calibration error of the combined probabilities (15 bins).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_open_set import fit_head, folds_of, served_features  # noqa: E402

from champipy.intervals import wilson  # noqa: E402
from champipy.model.backbone import SpeciesNet  # noqa: E402
from champipy.model.calibrate import fit_temperature, softmax  # noqa: E402
from champipy.model.data import examples_from_folder  # noqa: E402
from champipy.model.evaluate import expected_calibration_error  # noqa: E402
from champipy.model.observation import RULES, combine  # noqa: E402
from champipy.model.train import OnnxFeatureExtractor  # noqa: E402
from champipy.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=3000)
    parser.add_argument("--cache", type=Path)
    args = parser.parse_args()
    settings = Settings()
    if settings.dataset_dir is None or settings.eval_dir is None:
        sys.exit("Set CHAMPIPY_DATASET_DIR and CHAMPIPY_EVAL_DIR.")
    torch.set_num_threads(2)
    train, evaluation = examples_from_folder(settings.dataset_dir), examples_from_folder(settings.eval_dir)
    labels = sorted({e.label for e in train})
    if args.cache and args.cache.exists():
        cached = np.load(args.cache)
        x_train, x_eval = cached["train"], cached["eval"]
    else:
        model = SpeciesNet("lite2", len(labels))
        extract = OnnxFeatureExtractor(model)
        x_train = served_features(extract, train, model.image_size)
        x_eval = served_features(extract, evaluation, model.image_size)
    y_train = np.array([labels.index(e.label) for e in train])
    y_eval = np.array([labels.index(e.label) for e in evaluation])

    held_logits, held_y = [], []
    for rows, held in folds_of(y_train):
        held_logits.append(fit_head(x_train[rows], y_train[rows], len(labels), True)(x_train[held]))
        held_y.append(y_train[held])
    temperature = fit_temperature(np.concatenate(held_logits), np.concatenate(held_y)).temperature
    probabilities = softmax(fit_head(x_train, y_train, len(labels), True)(x_eval), temperature)

    rng = np.random.default_rng(0)
    by_species = [np.flatnonzero(y_eval == s) for s in range(len(labels))]
    print(f"temperature {temperature:.3f}; {args.groups} groups per size; top-1 [95% CI] / ECE")
    print(f"{'rule':<16}" + "".join(f"{'k=' + str(k):>30}" for k in (1, 2, 3)))
    # The same groups for every rule.
    drawn = {}
    for k in (1, 2, 3):
        species = rng.integers(0, len(labels), args.groups)
        drawn[k] = (species, [rng.choice(by_species[s], k, replace=False) for s in species])
    for rule in RULES:
        cells = []
        for k in (1, 2, 3):
            species, groups = drawn[k]
            combined = np.stack([combine(probabilities[g], rule) for g in groups])
            hits = int((combined.argmax(1) == species).sum())
            rate = wilson(hits, len(groups))
            ece = expected_calibration_error(combined, species)
            cells.append(f"{rate.rate:.3f} [{rate.low:.3f},{rate.high:.3f}] / {ece:.3f}")
        print(f"{rule:<16}" + "".join(f"{c:>30}" for c in cells))


if __name__ == "__main__":
    main()
