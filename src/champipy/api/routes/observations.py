"""Observations: 1-5 photos of one find (URLs, uploads, or a Mushroom Observer observation)
identified together."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ...app_deps import ObservationsDep, StoreDep
from ...errors import InvalidInput, NotFound
from ...services.observations import MAX_PHOTOS, Photo
from ...store.base import Observation
from ..deps import CurrentUser
from ..errors import describe_validation_errors, signed_in
from ..schemas import REJECT_DOC, FeedbackIn, ObservationIn, ObservationOut, ScoreOut
from .predictions import _PREDICTING, _form_bool, _form_int

router = APIRouter(prefix="/observations", tags=["observations"], responses=signed_in())

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": ObservationIn.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "maxItems": MAX_PHOTOS,
                            "description": "1 to 5 photos of one find, each in a field named 'file'",
                        },
                        "top_k": {"type": "integer", "minimum": 1, "default": 3},
                        "reject": {"type": "boolean", "default": True, "description": REJECT_DOC},
                    },
                }
            },
        },
    }
}


@router.post(
    "",
    response_model=ObservationOut,
    responses=_PREDICTING,
    openapi_extra=_BODY_DOC,
    summary="Identify 1-5 photos of one find together: JSON {urls | mo_observation, top_k} or uploads",
)
async def identify(request: Request, user: CurrentUser, observations: ObservationsDep) -> ObservationOut:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    mo_observation = None
    if content_type == "multipart/form-data":
        form = await request.form(max_files=MAX_PHOTOS + 1)
        uploads = [item for item in form.getlist("file") if isinstance(item, UploadFile)]
        if not uploads:
            raise InvalidInput("Send the photos in multipart fields named 'file'.")
        if len(uploads) > MAX_PHOTOS:
            raise InvalidInput(f"An observation has 1 to {MAX_PHOTOS} photos; {len(uploads)} were given.")
        photos = [Photo(data=await upload.read(), filename=upload.filename) for upload in uploads]
        top_k = _form_int(form.get("top_k", "3"))
        reject = _form_bool(form.get("reject", "true"), "reject")
    elif content_type in ("application/json", ""):
        try:
            body = ObservationIn.model_validate_json(await request.body())
        except ValidationError as exc:
            raise InvalidInput(describe_validation_errors(exc.errors())) from None
        if (body.urls is None) == (body.mo_observation is None):
            raise InvalidInput('Give "urls" (1 to 5) or "mo_observation", one of the two.')
        photos = [Photo(url=url) for url in body.urls or []]
        if body.urls is not None and not 1 <= len(photos) <= MAX_PHOTOS:
            raise InvalidInput(f"An observation has 1 to {MAX_PHOTOS} photos; {len(photos)} were given.")
        mo_observation, top_k, reject = body.mo_observation, body.top_k, body.reject
    else:
        raise InvalidInput('Send JSON {"urls": [...]} or {"mo_observation": ...}, or a multipart upload.')
    outcome = await run_in_threadpool(observations.identify, photos, top_k, user, mo_observation)
    return ObservationOut.from_outcome(outcome, reject)


@router.get("/recent", summary="My most recent observations (combined answers)")
def recent(
    user: CurrentUser, store: StoreDep, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> list[dict[str, object]]:
    return [_record(o) for o in store.recent_observations(limit, username=user.username)]


@router.get("/{observation_id}", responses=signed_in(NotFound), summary="One of my observations")
def get_observation(observation_id: str, user: CurrentUser, store: StoreDep) -> dict[str, object]:
    found = store.get_observation(observation_id)
    if found is None or (found.username != user.username and not user.is_admin):
        raise NotFound("No such observation.")
    return _record(found)


@router.post(
    "/{observation_id}/feedback",
    responses=signed_in(NotFound, InvalidInput),
    summary="Confirm or correct the species of every photo of an observation",
)
def feedback(
    observation_id: str, body: FeedbackIn, user: CurrentUser, observations: ObservationsDep
) -> dict[str, object]:
    updated = observations.feedback(observation_id, body.species, user)
    return {
        "id": observation_id,
        "feedback_species": updated[0].feedback_species if updated else None,
        "predictions": [p.id for p in updated],
    }


def _record(o: Observation) -> dict[str, object]:
    return {
        "id": o.id,
        "results": [ScoreOut(species=s.species, probability=s.probability).model_dump() for s in o.results],
        "recognised": o.recognised,
        "model": {"name": o.model_name, "version": o.model_version},
        "prediction_ids": list(o.prediction_ids),
        "mo": None
        if o.mo_observation_id is None
        else {"observation_id": o.mo_observation_id, "consensus": o.mo_consensus},
        "created_at": o.created_at.isoformat(),
    }
