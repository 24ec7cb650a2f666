"""Which stored photos a retrain or fine-tune learns from, and which species it learns.

The label set is the base version's species plus every species that has at least
``new_species_min_photos`` photos labelled by a person (confirmed or imported). The photos
are the ``limit`` first in the store's order (confirmed, imported, then predicted; most recent
first within each), except that:

- a predicted label is admitted only at or above ``min_predicted_probability`` (the base
  version's precision rule, model/kept_labels.py); one without a recorded probability (stored
  by the original ChampiPy, or before this rule) only with ``unscored_predictions`` (on by
  default: an original deployment's images are all of that kind, and a retrain without them
  would have nothing to learn from);
- the special answers ("not a mushroom", "unknown species") never train;
- a species of the label set with fewer than ``floor`` photos among them takes older ones of
  its own, so that no species is starved by a burst of recent photos of another.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from ..species_names import is_trainable
from ..store.records import ImageRecord, LabelSource

MIN_PHOTOS_PER_SPECIES = 2  # fewer cannot be split between training and validation


@dataclass(frozen=True)
class TrainingSelection:
    images: list[ImageRecord]
    labels: list[str]  # the species the new version will know, by name
    new_species: list[str]  # of those, the ones the base version did not know
    left_out: dict[str, str] = field(default_factory=dict)  # species -> why it is not learned
    predicted_admitted: int = 0
    predicted_refused: int = 0  # below the probability rule, or without a probability
    added_by_floor: int = 0

    def params(self) -> dict[str, object]:
        """What the registered version records about its training set."""
        return {
            "label_set": self.labels,
            "new_species": self.new_species,
            "species_left_out": self.left_out,
            "n_predicted_admitted": self.predicted_admitted,
            "n_predicted_refused": self.predicted_refused,
            "n_added_by_species_floor": self.added_by_floor,
            "n_per_source": dict(Counter(str(r.label_source) for r in self.images)),
        }


def select_training_images(
    records: Sequence[ImageRecord],
    limit: int,
    base_labels: Collection[str],
    min_new_photos: int,
    floor: int,
    min_predicted_probability: float,
    unscored_predictions: bool = True,
) -> TrainingSelection:
    """``records``: every stored image in the store's training order. ``base_labels``: the
    species of the version this one replaces (empty: every species present is learned)."""
    predicted = [r for r in records if r.label_source is LabelSource.PREDICTED and is_trainable(r.label)]

    def is_admitted(record: ImageRecord) -> bool:
        return _admitted(record, min_predicted_probability, unscored_predictions)

    eligible = [r for r in records if is_trainable(r.label) and is_admitted(r)]
    curated = Counter(r.label for r in eligible if r.label_source is not LabelSource.PREDICTED)
    present = Counter(r.label for r in eligible)
    left_out: dict[str, str] = {}
    labels = set()
    for species in present:
        if not base_labels or species in base_labels:
            labels.add(species)
        elif curated[species] >= min_new_photos:
            labels.add(species)
        else:
            left_out[species] = f"{curated[species]} photos labelled by a person, {min_new_photos} needed"
    for species in base_labels:
        if species not in present:
            left_out[species] = "no photo stored"

    in_set = [r for r in eligible if r.label in labels]
    chosen, rest = in_set[:limit], in_set[limit:]
    have = Counter(r.label for r in chosen)
    for record in rest:
        if have[record.label] < floor:
            chosen.append(record)
            have[record.label] += 1
    from_floor = {r.sha256 for r in chosen[len(in_set[:limit]) :]}
    for species in sorted(labels):
        if have[species] < MIN_PHOTOS_PER_SPECIES:
            left_out[species] = f"only {have[species]} photo(s) in the training window"
            labels.discard(species)
    chosen = [r for r in chosen if r.label in labels]
    admitted = sum(r.label_source is LabelSource.PREDICTED for r in chosen)
    return TrainingSelection(
        images=chosen,
        labels=sorted(labels),
        new_species=sorted(labels - set(base_labels)) if base_labels else [],
        left_out=dict(sorted(left_out.items())),
        predicted_admitted=admitted,
        predicted_refused=len(predicted) - sum(is_admitted(r) for r in predicted),
        added_by_floor=sum(r.sha256 in from_floor for r in chosen),
    )


def _admitted(record: ImageRecord, min_predicted_probability: float, unscored_predictions: bool) -> bool:
    if record.label_source is not LabelSource.PREDICTED:
        return True
    if record.label_probability is None:
        return unscored_predictions
    return record.label_probability >= min_predicted_probability
