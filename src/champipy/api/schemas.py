"""Response and request bodies of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from ..services.observations import ObservationOutcome, PhotoResult
from ..services.predict import PredictionOutcome, is_uncertain
from ..services.verdict import answer_species, is_rejected, verdict_sentence
from ..store.base import ApiToken, Job, Prediction


class ModelStatus(BaseModel):
    loaded: bool
    name: str | None = None
    version: str | None = None
    loaded_at: datetime | None = None
    last_error: str | None = None
    open_set: dict[str, Any] | None = Field(None, description="The open-set method and threshold; null: none")


class StatusOut(BaseModel):
    status: str
    version: str
    model: ModelStatus


class DbConnexOut(BaseModel):
    connected: bool
    backend: str


class UserOut(BaseModel):
    username: str
    roles: list[str]
    is_admin: bool


class TokenIn(BaseModel):
    name: str = Field("api", max_length=100)
    expires_in_days: int | None = Field(None, ge=1, le=3650, description="Omit for a token valid until revoked")


class TokenOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    revoked: bool
    expires_at: datetime | None = None

    @classmethod
    def from_record(cls, record: ApiToken) -> TokenOut:
        return cls(
            id=record.id,
            name=record.name,
            created_at=record.created_at,
            revoked=record.revoked,
            expires_at=record.expires_at,
        )


class IssuedTokenOut(TokenOut):
    token: str = Field(description="The secret: shown only now, store it safely.")


class ErrorOut(BaseModel):
    error: str
    detail: Any


class ScoreOut(BaseModel):
    species: str
    probability: float


class ModelRef(BaseModel):
    name: str
    version: str


REJECT_DOC = (
    "false: present the top species as the answer even when the photo does not look like one of the known"
    " species (Pl@ntNet's no-reject); the verdict is reported either way."
)


class PredictIn(BaseModel):
    url: str = Field(..., min_length=1, max_length=4096, description="http(s) URL of the photo")
    top_k: int = Field(3, description="How many species to return (1 to the number of species)")
    reject: bool = Field(True, description=REJECT_DOC)


class OpenSetOut(BaseModel):
    """The open-set check of this photo: a score above the version's threshold means "not one
    of the species I know"."""

    recognised: bool
    score: float
    threshold: float


class PredictionOut(BaseModel):
    id: str
    answer: str | None = Field(description="The species presented as the answer; null when the photo is rejected.")
    recognised: bool | None = Field(
        description="Whether the photo looks like one of the known species; null: this model version has no"
        " open-set check (trained before it existed)."
    )
    rejected: bool = Field(description="Not recognised and rejection on: the ranked species are not an answer.")
    verdict: str = Field(description="The answer in one sentence.")
    open_set: OpenSetOut | None
    results: list[ScoreOut]
    model: ModelRef
    image_sha256: str
    cached: bool
    kept_for_training: bool
    uncertain: bool
    source_url: str | None
    created_at: datetime

    @classmethod
    def from_outcome(cls, outcome: PredictionOutcome, reject: bool = True) -> PredictionOut:
        """``reject``: the caller's choice (False: name the top species even when not recognised)."""
        p = outcome.prediction
        return cls(
            id=p.id,
            answer=answer_species(p, reject),
            recognised=None if p.open_set is None else p.open_set.recognised,
            rejected=is_rejected(p, reject),
            verdict=verdict_sentence(p, reject),
            open_set=_open_set_out(p),
            results=[ScoreOut(species=s.species, probability=s.probability) for s in outcome.results],
            model=ModelRef(name=p.model_name, version=p.model_version),
            image_sha256=p.image_sha256,
            cached=p.cached,
            kept_for_training=outcome.kept_for_training,
            uncertain=outcome.uncertain,
            source_url=p.source_url,
            created_at=p.created_at,
        )


class FeedbackIn(BaseModel):
    species: str = Field(..., min_length=1, max_length=200)


class PredictionRecordOut(BaseModel):
    id: str
    username: str
    results: list[ScoreOut]
    model: ModelRef
    image_sha256: str
    cached: bool
    source_url: str | None
    filename: str | None
    created_at: datetime
    feedback_species: str | None
    uncertain: bool
    recognised: bool | None
    rejected: bool = Field(description="Not recognised: the ranked species are not an answer (rejection on).")
    verdict: str
    open_set: OpenSetOut | None

    @classmethod
    def from_record(cls, p: Prediction, uncertain_threshold: float) -> PredictionRecordOut:
        return cls(
            id=p.id,
            rejected=is_rejected(p),
            verdict=verdict_sentence(p),
            recognised=None if p.open_set is None else p.open_set.recognised,
            open_set=_open_set_out(p),
            username=p.username,
            results=[ScoreOut(species=s.species, probability=s.probability) for s in p.results],
            model=ModelRef(name=p.model_name, version=p.model_version),
            image_sha256=p.image_sha256,
            cached=p.cached,
            source_url=p.source_url,
            filename=p.filename,
            created_at=p.created_at,
            feedback_species=p.feedback_species,
            uncertain=is_uncertain(p, uncertain_threshold),
        )


class FinetuneIn(BaseModel):
    model_name: str = Field("champipy", max_length=200)
    stage: str = Field("production", max_length=64, description="alias (or the original's stage) to start from")
    variables: int = Field(2, ge=0, le=50, description="blocks to train besides the head (0: head only)")
    epochs: int = Field(5, ge=1, le=100)
    promote_if_better: bool = False


class RetrainIn(BaseModel):
    promote_if_better: bool = False


class JobOut(BaseModel):
    id: str
    kind: str
    state: str
    params: dict[str, Any]
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    username: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_record(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            kind=job.kind,
            state=str(job.state),
            params=job.params,
            progress=job.progress,
            result=job.result,
            error=job.error,
            username=job.username,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class ModelVersionOut(BaseModel):
    name: str
    version: str
    aliases: list[str]
    metrics: dict[str, float]
    params: dict[str, str]
    run_id: str | None
    created_at: datetime | None
    promoted_at: datetime | None
    serving: bool


def _open_set_out(p: Prediction) -> OpenSetOut | None:
    if p.open_set is None:
        return None
    return OpenSetOut(recognised=p.open_set.recognised, score=p.open_set.score, threshold=p.open_set.threshold)


# --- observations ------------------------------------------------------------------------------
class ObservationIn(BaseModel):
    urls: list[Annotated[str, Field(min_length=1, max_length=4096)]] | None = Field(
        None, description="1 to 5 photo URLs of one find (Mushroom Observer pages and files welcome)"
    )
    mo_observation: str | None = Field(
        None, max_length=4096, description="A Mushroom Observer observation URL or id, instead of urls"
    )
    top_k: int = Field(3, description="How many species to return (1 to the number of species)")
    reject: bool = Field(True, description=REJECT_DOC)


class PhotoErrorOut(BaseModel):
    error: str
    detail: str


class ObservationPhotoOut(BaseModel):
    source: str = Field(description="The photo's URL, or the uploaded file's name")
    prediction: PredictionOut | None = Field(description="Shaped as a /predictions answer; null when it failed")
    error: PhotoErrorOut | None = None


class MoRefOut(BaseModel):
    observation_id: int
    consensus: str | None


class ObservationOut(BaseModel):
    id: str
    results: list[ScoreOut] = Field(description="The photos combined (geometric mean), most probable first")
    answer: str | None = Field(description="The species presented as the answer; null when rejected")
    recognised: bool | None = Field(description="Any photo recognised; null: the version has no open-set check")
    rejected: bool
    verdict: str
    model: ModelRef
    photos: list[ObservationPhotoOut]
    mo: MoRefOut | None
    agrees_with_consensus: bool | None = Field(
        description="Whether ChampiPy's answer is the Mushroom Observer consensus name; null without one"
    )
    created_at: datetime

    @classmethod
    def from_outcome(cls, outcome: ObservationOutcome, reject: bool = True) -> ObservationOut:
        o = outcome.observation
        rejected = reject and o.recognised is False
        n = len(o.results)
        top = o.results[0] if o.results else None
        if top is None:
            verdict = "No species."
        elif rejected:
            verdict = f"Not one of the {n} species ChampiPy knows; the closest are listed, least unlikely first."
        else:
            verdict = f"Most likely {top.species} ({top.probability:.0%}) from {len(o.prediction_ids)} photo(s)."
        return cls(
            id=o.id,
            results=[ScoreOut(species=s.species, probability=s.probability) for s in o.results[: outcome.top_k]],
            answer=None if rejected or top is None else top.species,
            recognised=o.recognised,
            rejected=rejected,
            verdict=verdict,
            model=ModelRef(name=o.model_name, version=o.model_version),
            photos=[_photo_out(p, outcome.top_k, reject) for p in outcome.photos],
            mo=None
            if o.mo_observation_id is None
            else MoRefOut(observation_id=o.mo_observation_id, consensus=o.mo_consensus),
            agrees_with_consensus=outcome.agrees_with_consensus,
            created_at=o.created_at,
        )


def _photo_out(result: PhotoResult, top_k: int, reject: bool) -> ObservationPhotoOut:
    if result.outcome is None:
        error = result.error
        return ObservationPhotoOut(
            source=result.photo.label,
            prediction=None,
            error=PhotoErrorOut(error=error.code, detail=error.detail) if error else None,
        )
    answer = PredictionOut.from_outcome(result.outcome, reject)
    return ObservationPhotoOut(
        source=result.photo.label, prediction=answer.model_copy(update={"results": answer.results[:top_k]})
    )
