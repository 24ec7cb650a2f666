"""Which stored photos a retrain learns from: the label set, the precision rule for predicted
labels, the special answers, and the per-species floor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from champipy.services.training_set import select_training_images
from champipy.store.records import ImageRecord, LabelSource
from champipy.store.rules import label_rank

START = datetime(2026, 12, 1, tzinfo=UTC)


class Images:
    """Records in the store's training order, made in the order they were 'stored'."""

    def __init__(self) -> None:
        self.made: list[ImageRecord] = []

    def add(self, label: str, source: LabelSource, n: int = 1, probability: float | None = None) -> None:
        for _ in range(n):
            i = len(self.made)
            self.made.append(
                ImageRecord(
                    sha256=f"{i:064x}",
                    label=label,
                    label_source=source,
                    source_url=None,
                    filename=None,
                    username=None,
                    created_at=START + timedelta(minutes=i),
                    size=1,
                    label_probability=probability,
                )
            )

    def in_store_order(self) -> list[ImageRecord]:
        newest_first = sorted(self.made, key=lambda r: r.created_at, reverse=True)
        return sorted(newest_first, key=lambda r: label_rank(r.label_source))


CONFIRMED, IMPORTED, PREDICTED = LabelSource.CONFIRMED, LabelSource.IMPORTED, LabelSource.PREDICTED


def test_a_new_species_is_learned_once_enough_people_labelled_it():
    images = Images()
    images.add("Amanita muscaria", IMPORTED, 5)
    images.add("Boletus edulis", IMPORTED, 5)
    images.add("Morchella esculenta", CONFIRMED, 3)  # enough
    images.add("Russula emetica", CONFIRMED, 2)  # not enough...
    images.add("Russula emetica", PREDICTED, 10, probability=0.999)  # ...and predictions do not count
    base = ["Amanita muscaria", "Boletus edulis"]

    selection = select_training_images(images.in_store_order(), 100, base, 3, floor=0, min_predicted_probability=0.9)

    assert selection.labels == ["Amanita muscaria", "Boletus edulis", "Morchella esculenta"]
    assert selection.new_species == ["Morchella esculenta"]
    assert "Russula emetica" in selection.left_out and "2 photos" in selection.left_out["Russula emetica"]
    assert {r.label for r in selection.images} == set(selection.labels)


def test_predicted_labels_need_the_probability_rule_and_a_recorded_probability():
    images = Images()
    images.add("Amanita muscaria", IMPORTED, 3)
    images.add("Boletus edulis", IMPORTED, 3)
    images.add("Amanita muscaria", PREDICTED, 2, probability=0.995)
    images.add("Amanita muscaria", PREDICTED, 4, probability=0.80)  # stored (> 0.70), not clean enough
    images.add("Boletus edulis", PREDICTED, 1, probability=None)  # the original's, no probability

    strict = select_training_images(
        images.in_store_order(), 100, [], 20, floor=0, min_predicted_probability=0.99, unscored_predictions=False
    )
    assert strict.predicted_admitted == 2 and strict.predicted_refused == 5
    assert all(r.label_probability == 0.995 for r in strict.images if r.label_source is PREDICTED)

    # by default the original's predicted labels (no probability) still train; low ones never
    default = select_training_images(images.in_store_order(), 100, [], 20, floor=0, min_predicted_probability=0.99)
    assert default.predicted_admitted == 3 and default.predicted_refused == 4


def test_the_special_answers_never_train():
    images = Images()
    images.add("Amanita muscaria", CONFIRMED, 3)
    images.add("Boletus edulis", CONFIRMED, 3)
    images.add("not a mushroom", CONFIRMED, 30)
    images.add("unknown species", CONFIRMED, 30)
    selection = select_training_images(images.in_store_order(), 100, [], 3, floor=0, min_predicted_probability=0.9)
    assert selection.labels == ["Amanita muscaria", "Boletus edulis"]
    assert {r.label for r in selection.images} == {"Amanita muscaria", "Boletus edulis"}


def test_a_species_starved_by_recent_photos_of_others_takes_older_ones_of_its_own():
    images = Images()
    images.add("Boletus edulis", IMPORTED, 6)  # old
    images.add("Amanita muscaria", IMPORTED, 20)  # recent: fills the window of 10
    base = ["Amanita muscaria", "Boletus edulis"]

    without = select_training_images(images.in_store_order(), 10, base, 3, floor=0, min_predicted_probability=0.9)
    with_floor = select_training_images(images.in_store_order(), 10, base, 3, floor=4, min_predicted_probability=0.9)

    assert "Boletus edulis" not in without.labels and "Boletus edulis" in without.left_out
    counts = {label: sum(r.label == label for r in with_floor.images) for label in with_floor.labels}
    assert counts == {"Amanita muscaria": 10, "Boletus edulis": 4}
    assert with_floor.added_by_floor == 4
    newest_boletus = sorted((r for r in images.made if r.label == "Boletus edulis"), key=lambda r: r.created_at)[-4:]
    assert {r.sha256 for r in with_floor.images if r.label == "Boletus edulis"} == {r.sha256 for r in newest_boletus}


def test_a_base_species_without_photos_is_reported_not_learned():
    images = Images()
    images.add("Amanita muscaria", IMPORTED, 3)
    images.add("Boletus edulis", IMPORTED, 3)
    base = ["Amanita muscaria", "Boletus edulis", "Coprinus comatus"]
    selection = select_training_images(images.in_store_order(), 100, base, 3, floor=0, min_predicted_probability=0.9)
    assert selection.labels == ["Amanita muscaria", "Boletus edulis"]
    assert selection.left_out == {"Coprinus comatus": "no photo stored"}
    assert selection.params()["n_per_source"] == {"imported": 6}
