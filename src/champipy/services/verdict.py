"""What an answer says about its top species: named, or withheld as "not one I know".

One rule, used by the JSON answers, the web page and the records: a prediction whose model
version has an open-set score is *rejected* when the score is above the version's threshold
and the caller did not turn rejection off (``reject=false``, like Pl@ntNet's no-reject). The
ranked species stay in every answer; a rejected one just does not present the first as the
answer.
"""

from __future__ import annotations

from ..store.records import Prediction


def is_rejected(prediction: Prediction, reject: bool = True) -> bool:
    return reject and prediction.open_set is not None and not prediction.open_set.recognised


def answer_species(prediction: Prediction, reject: bool = True) -> str | None:
    """The species presented as the answer; None when rejected (or no species at all)."""
    if is_rejected(prediction, reject) or not prediction.results:
        return None
    return prediction.results[0].species


def verdict_sentence(prediction: Prediction, reject: bool = True) -> str:
    n = len(prediction.results)
    if not prediction.results:
        return "No species."
    top = prediction.results[0]
    if is_rejected(prediction, reject):
        return f"Not one of the {n} species ChampiPy knows; the closest are listed, least unlikely first."
    named = f"{top.species} ({top.probability:.0%})."
    if prediction.open_set is None:
        return f"Most likely {named} This model version has no open-set check."
    if not prediction.open_set.recognised:
        return f"Most likely {named} Rejection is off: the photo does not look like one of the {n} known species."
    return f"Most likely {named}"
