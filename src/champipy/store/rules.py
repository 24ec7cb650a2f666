"""The storage rules every backend follows, written once: pure functions over records.

Backends differ in how they write (rows, documents, dataclasses in a dict); what they write
is decided here: which timestamps a job update sets, which labels train first, how results
are stored, what feedback changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ..errors import NotFound
from .records import (
    Job,
    JobState,
    LabelSource,
    NewImage,
    NewPrediction,
    Prediction,
    SpeciesCount,
    SpeciesScore,
)

# --- labels ------------------------------------------------------------------------------------
# Retraining takes confirmed labels first, then imported, then predicted.
# Curated labels first: a person gave them. Measured (the species-growth issue), training on
# kept predictions ahead of the imported photos lost 0.5-1.4 pt of top-1 and never gained.
LABEL_PRIORITY: dict[LabelSource, int] = {
    LabelSource.CONFIRMED: 0,
    LabelSource.IMPORTED: 1,
    LabelSource.PREDICTED: 2,
}
LABELS_BY_PRIORITY: tuple[LabelSource, ...] = tuple(sorted(LABEL_PRIORITY, key=LABEL_PRIORITY.__getitem__))
# A label source no backend knows sorts after every known one.
UNKNOWN_LABEL_RANK = len(LABEL_PRIORITY)


def label_rank(source: str) -> int:
    """Where images with this label source come in the training order (0 first)."""
    try:
        return LABEL_PRIORITY[LabelSource(source)]
    except ValueError:
        return UNKNOWN_LABEL_RANK


def species_counts(rows: Iterable[tuple[str, str, int]]) -> list[SpeciesCount]:
    """(label, label source, count) rows -> one count per label, by name; unlabelled images
    and unknown sources are left out."""
    counts: dict[str, dict[str, int]] = {}
    for label, source, n in rows:
        if not label or source not in _SOURCES:
            continue
        per_source = counts.setdefault(label, {})
        per_source[source] = per_source.get(source, 0) + n
    return [SpeciesCount(label, **per_source) for label, per_source in sorted(counts.items())]


_SOURCES = frozenset(source.value for source in LabelSource)


# --- prediction results ---------------------------------------------------------------------------
def encode_results(results: Iterable[SpeciesScore]) -> list[dict[str, Any]]:
    """The stored form of results, the original ChampiPy's: ``[{"name", "proba"}, ...]``."""
    return [{"name": score.species, "proba": score.probability} for score in results]


def decode_results(stored: Iterable[Mapping[str, Any]] | None) -> tuple[SpeciesScore, ...]:
    return tuple(SpeciesScore(str(r["name"]), float(r["proba"])) for r in stored or ())


def stored_prediction(new: NewPrediction, prediction_id: str, created_at: datetime) -> Prediction:
    """The prediction as it is once stored: with its id and time, without feedback."""
    return Prediction(
        id=prediction_id,
        username=new.username,
        image_sha256=new.image_sha256,
        model_name=new.model_name,
        model_version=new.model_version,
        results=tuple(new.results),
        source_url=new.source_url,
        filename=new.filename,
        cached=new.cached,
        latency_ms=new.latency_ms,
        open_set=new.open_set,
        created_at=created_at,
    )


# --- feedback ----------------------------------------------------------------------------------
def feedback_changes(species: str, username: str, moment: datetime) -> dict[str, Any]:
    """The prediction fields feedback sets (the same names in every backend)."""
    return {"feedback_species": species, "feedback_username": username, "feedback_at": moment}


def confirmed_image(image: NewImage, prediction_sha256: str, species: str) -> NewImage:
    """The image given with feedback, as it is stored: labelled ``species``, CONFIRMED."""
    if image.sha256 != prediction_sha256:
        raise ValueError(f"the feedback image {image.sha256} is not the prediction's image {prediction_sha256}")
    return replace(image, label=species, label_source=LabelSource.CONFIRMED)


# --- users ---------------------------------------------------------------------------------------
def user_changes(
    *,
    password_hash: str | None = None,
    roles: tuple[str, ...] | None = None,
    disabled: bool | None = None,
) -> dict[str, Any]:
    """The ``User`` fields an update sets: only those given."""
    changes: dict[str, Any] = {}
    if password_hash is not None:
        changes["password_hash"] = password_hash
    if roles is not None:
        changes["roles"] = tuple(roles)
    if disabled is not None:
        changes["disabled"] = disabled
    return changes


# --- jobs ----------------------------------------------------------------------------------------
FINISHED_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED})


@dataclass(frozen=True)
class JobUpdate:
    """One ``update_job`` call: what it sets, decided once for every backend."""

    moment: datetime
    state: JobState | None = None
    progress: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    @property
    def starts(self) -> bool:
        """Sets ``started_at`` to ``moment`` when it is not set yet: only the first start counts."""
        return self.state is JobState.RUNNING

    def changes(self) -> dict[str, Any]:
        """Every other field the update sets, by ``Job`` field name, in stored (plain) form:
        what is given, ``finished_at`` on SUCCEEDED/FAILED, and always ``heartbeat_at``."""
        changes: dict[str, Any] = {"heartbeat_at": self.moment}
        if self.state is not None:
            changes["state"] = self.state.value
            if self.state in FINISHED_STATES:
                changes["finished_at"] = self.moment
        if self.progress is not None:
            changes["progress"] = dict(self.progress)
        if self.result is not None:
            changes["result"] = dict(self.result)
        if self.error is not None:
            changes["error"] = self.error
        return changes

    def applied_to(self, job: Job) -> Job:
        changes = self.changes()
        if "state" in changes:
            changes["state"] = JobState(changes["state"])
        if self.starts and job.started_at is None:
            changes["started_at"] = self.moment
        return replace(job, **changes)


# --- not found ---------------------------------------------------------------------------------
# The same message from every backend.
def no_user(username: str) -> NotFound:
    return NotFound(f"no user {username!r}")


def no_image(sha256: str) -> NotFound:
    return NotFound(f"no image {sha256}")


def no_prediction(prediction_id: str) -> NotFound:
    return NotFound(f"no prediction {prediction_id!r}")


def no_job(job_id: str) -> NotFound:
    return NotFound(f"no job {job_id!r}")
