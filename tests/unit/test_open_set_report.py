"""The open-set report: rates with Wilson intervals, AUROC, per-category numbers, and
``evaluate_folder`` feeding it from a folder of in-set and one of out-of-distribution photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from champipy.errors import InvalidInput
from champipy.intervals import wilson
from champipy.model.evaluate import evaluate_folder
from champipy.model.open_set_report import open_set_report

from .fakes import LABELS, RED, StubClassifier, image_bytes

GREY = (128, 128, 128)
BLUE = (0, 0, 255)


def test_wilson_interval_matches_the_textbook_values():
    # Wilson score interval, z = 1.96: 0 of 10 -> [0, 0.2775]; 5 of 10 -> [0.2366, 0.7634].
    none = wilson(0, 10)
    assert none.rate == 0 and none.low == 0 and none.high == pytest.approx(0.2775, abs=1e-4)
    half = wilson(5, 10)
    assert (half.low, half.high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson(0, 0).n == 0


def test_report_counts_rejections_auroc_and_categories():
    report = open_set_report(
        "knn",
        threshold=1.0,
        keep_rate=0.5,
        in_set_scores=np.array([0.0, 0.5, 2.0, 0.2]),
        in_set_correct=np.array([True, False, True, True]),
        ood_scores=np.array([3.0, 0.9, 4.0]),
        ood_categories=["faces", "faces", ""],
    )
    assert (report.in_set_rejected.k, report.in_set_rejected.n) == (1, 4)
    assert (report.top1_recognised.k, report.top1_recognised.n) == (2, 3)  # the rejected hit is not counted
    # OOD above in-set in 11 of 12 pairs: only 0.9 < 2.0 is not
    assert report.ood_auroc == pytest.approx(11 / 12)
    assert (report.ood_recognised.k, report.ood_recognised.n) == (1, 3)
    assert report.ood_fpr_at_keep_rate == pytest.approx(0.0)  # the in-set median, 0.35, lets none in
    assert set(report.categories) == {"faces", "(top folder)"}
    assert report.categories["faces"].n == 2 and report.categories["faces"].auroc == pytest.approx(7 / 8)
    assert report.categories["(top folder)"].auroc == pytest.approx(1.0)
    assert set(report.metrics()) == {
        "eval_open_set_rejected",
        "eval_top1_recognised",
        "ood_recognised",
        "ood_auroc",
        "ood_fpr_at_keep_rate",
    }


def test_report_without_ood_photos_has_only_the_in_set_numbers():
    report = open_set_report("knn", 1.0, 0.98, np.array([0.5, 1.5]), np.array([True, True]))
    assert report.ood_auroc is None and report.ood_recognised is None and report.categories == {}
    assert set(report.metrics()) == {"eval_open_set_rejected", "eval_top1_recognised"}


def _write(folder: Path, name: str, colour: tuple[int, int, int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(image_bytes(colour))


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    in_set, ood = tmp_path / "eval", tmp_path / "ood"
    _write(in_set / LABELS[0], "1.png", RED)
    _write(in_set / LABELS[0], "2.png", GREY)  # in-set but grey: rejected
    _write(in_set / LABELS[2], "3.png", BLUE)
    _write(ood / "grey", "1.png", GREY)
    _write(ood / "grey", "2.png", (100, 100, 100))
    _write(ood, "red.png", RED)  # an out-of-distribution photo the stub recognises
    (ood / "notes.txt").write_text("not an image")
    return in_set, ood


def test_evaluate_folder_measures_the_verdict_against_the_ood_folder(folders: tuple[Path, Path]):
    in_set, ood = folders
    report = evaluate_folder(StubClassifier(open_set=True), in_set, ood=ood)
    assert report.open_set is not None
    assert (report.open_set.in_set_rejected.k, report.open_set.in_set_rejected.n) == (1, 3)
    assert report.open_set.ood_n == 3
    assert report.open_set.categories["grey"].recognised.k == 0
    assert report.open_set.categories["(top folder)"].recognised.k == 1
    assert report.to_dict()["open_set"]["categories"]["grey"]["n"] == 2


def test_a_version_without_an_open_set_score_reports_none(folders: tuple[Path, Path]):
    in_set, ood = folders
    report = evaluate_folder(StubClassifier(), in_set, ood=ood)
    assert report.open_set is None and report.to_dict()["open_set"] is None


def test_a_missing_ood_folder_is_refused(folders: tuple[Path, Path], tmp_path: Path):
    in_set, _ = folders
    with pytest.raises(InvalidInput, match="not a folder"):
        evaluate_folder(StubClassifier(open_set=True), in_set, ood=tmp_path / "absent")
