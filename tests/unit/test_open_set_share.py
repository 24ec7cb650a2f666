"""The daily share of answers not recognised, from the store's recent predictions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from champipy.errors import InvalidInput
from champipy.services.open_set_share import rejections_by_day
from champipy.store.base import NewPrediction, OpenSetVerdict, Prediction, SpeciesScore

from .test_monitor import build

TODAY = date(2026, 12, 2)
UNKNOWN = OpenSetVerdict(score=2.0, threshold=1.0)
KNOWN = OpenSetVerdict(score=0.5, threshold=1.0)


def answered(day: date, verdict: OpenSetVerdict | None) -> Prediction:
    return Prediction(
        username="alice",
        image_sha256="0" * 64,
        model_name="champipy",
        model_version="1",
        results=(SpeciesScore("amanita", 0.9),),
        open_set=verdict,
        created_at=datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
    )


def test_each_day_counts_its_answers_and_the_rejected_share_of_those_with_a_verdict():
    yesterday = TODAY - timedelta(days=1)
    predictions = [
        answered(TODAY, UNKNOWN),
        answered(TODAY, KNOWN),
        answered(TODAY, KNOWN),
        answered(TODAY, None),  # a version without a score: an answer, no verdict
        answered(yesterday, KNOWN),
        answered(TODAY - timedelta(days=9), UNKNOWN),  # outside the 3 days asked for
    ]
    days = rejections_by_day(predictions, TODAY, 3)
    assert [d.day for d in days] == [TODAY - timedelta(days=2), yesterday, TODAY]
    assert [(d.answers, d.rejected.k, d.rejected.n) for d in days] == [(0, 0, 0), (1, 0, 1), (4, 1, 3)]
    assert days[2].rejected.rate == pytest.approx(1 / 3)
    assert days[2].rejected.low < 1 / 3 < days[2].rejected.high


def test_the_monitor_reads_the_store_and_says_what_the_version_expects(tmp_path, memory_store):
    from .fakes import StubClassifier

    parts = build(tmp_path, memory_store, classifier=StubClassifier(version="1", open_set=True))
    base = NewPrediction(username="alice", image_sha256="1" * 64, model_name="champipy", model_version="1", results=())
    for verdict in (UNKNOWN, KNOWN, KNOWN, KNOWN):
        memory_store.add_prediction(replace(base, open_set=verdict))

    report = parts.monitor.open_set_rejections(days=7)

    assert report["expected_rejected"] == pytest.approx(0.02)
    assert len(report["days"]) == 7 and report["days"][-1]["day"] == datetime.now(UTC).date().isoformat()
    assert report["days"][-1]["answers"] == 4 and report["days"][-1]["rejected"]["k"] == 1
    with pytest.raises(InvalidInput):
        parts.monitor.open_set_rejections(days=0)


def test_without_a_serving_model_nothing_is_expected(tmp_path, memory_store):
    parts = build(tmp_path, memory_store, promote=False)
    assert parts.monitor.open_set_rejections(days=1)["expected_rejected"] is None
