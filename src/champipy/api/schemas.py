"""Response and request bodies of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from ..services.predict import PredictionOutcome, is_uncertain
from ..store.base import ApiToken, Job, Prediction


class ModelStatus(BaseModel):
    loaded: bool
    name: str | None = None
    version: str | None = None
    loaded_at: datetime | None = None
    last_error: str | None = None


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


class PredictIn(BaseModel):
    url: str = Field(..., min_length=1, max_length=4096, description="http(s) URL of the photo")
    top_k: int = Field(3, description="How many species to return (1 to the number of species)")


class PredictionOut(BaseModel):
    id: str
    results: list[ScoreOut]
    model: ModelRef
    image_sha256: str
    cached: bool
    kept_for_training: bool
    uncertain: bool
    source_url: str | None
    created_at: datetime

    @classmethod
    def from_outcome(cls, outcome: PredictionOutcome) -> PredictionOut:
        p = outcome.prediction
        return cls(
            id=p.id,
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

    @classmethod
    def from_record(cls, p: Prediction, uncertain_threshold: float) -> PredictionRecordOut:
        return cls(
            id=p.id,
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
