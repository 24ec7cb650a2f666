"""The share of answers that were "not one of the species I know", day by day: a rise means
the traffic changed (new species, new kinds of photos), not that the model got worse.

Counted per answer, cached ones included: the question is what people send. Answers from a
version without an open-set score have no verdict and count only in ``answers``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from ..intervals import Rate, wilson
from ..store.records import Prediction


@dataclass(frozen=True)
class DailyRejections:
    day: date
    answers: int
    rejected: Rate  # of the answers with a verdict


def rejections_by_day(predictions: Iterable[Prediction], today: date, days: int) -> list[DailyRejections]:
    """One entry per day of the last ``days`` (today included), oldest first, empty days too."""
    first = today - timedelta(days=days - 1)
    answers = {first + timedelta(days=i): [0, 0, 0] for i in range(days)}  # answers, scored, rejected
    for prediction in predictions:
        day = prediction.created_at.date()
        if day not in answers:
            continue
        counts = answers[day]
        counts[0] += 1
        if prediction.open_set is not None:
            counts[1] += 1
            counts[2] += not prediction.open_set.recognised
    return [
        DailyRejections(day=day, answers=n, rejected=wilson(rejected, scored))
        for day, (n, scored, rejected) in answers.items()
    ]
