"""Predictions: by URL (the original's GET ?file=&nb_preds=), by JSON body, by upload."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ...app_deps import PredictorDep, SettingsDep, StoreDep
from ...errors import (
    AddressNotAllowed,
    BadUrl,
    Busy,
    Conflict,
    InvalidInput,
    NoModel,
    NotAnImage,
    NotFound,
    QuotaExceeded,
    RemoteFailed,
    RemoteNotFound,
    RemoteTimeout,
    TooLarge,
    TooManyFetches,
    UnsupportedImageShape,
)
from ...timing import stage
from ..deps import CurrentUser
from ..errors import describe_validation_errors, signed_in
from ..schemas import REJECT_DOC, FeedbackIn, PredictIn, PredictionOut, PredictionRecordOut

router = APIRouter(prefix="/predictions", tags=["predictions"], responses=signed_in())
_PREDICTING = signed_in(
    InvalidInput,
    BadUrl,
    AddressNotAllowed,
    RemoteNotFound,
    TooLarge,
    NotAnImage,
    UnsupportedImageShape,
    RemoteFailed,
    RemoteTimeout,
    QuotaExceeded,
    TooManyFetches,
    Busy,
    NoModel,
)


_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PredictIn.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "the photo"},
                        "top_k": {"type": "integer", "minimum": 1, "default": 3},
                        "reject": {"type": "boolean", "default": True, "description": REJECT_DOC},
                    },
                }
            },
        },
    }
}


@router.get(
    "", response_model=PredictionOut, responses=_PREDICTING, summary="Predict the species of the photo at a URL"
)
async def predict_by_url(
    user: CurrentUser,
    predictor: PredictorDep,
    file: Annotated[str, Query(min_length=1, max_length=4096, description="URL of the photo")],
    nb_preds: Annotated[int, Query(description="How many species to return")] = 3,
    reject: Annotated[bool, Query(description=REJECT_DOC)] = True,
) -> PredictionOut:
    outcome = await run_in_threadpool(predictor.predict_url, file, nb_preds, user)
    return PredictionOut.from_outcome(outcome, reject)


@router.post(
    "",
    response_model=PredictionOut,
    responses=_PREDICTING,
    openapi_extra=_UPLOAD_DOC,
    summary="Predict from a JSON body {url, top_k} or a multipart upload (field 'file')",
)
async def predict(request: Request, user: CurrentUser, predictor: PredictorDep) -> PredictionOut:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        with stage("read"):
            form = await request.form()
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidInput("Send the photo in a multipart field named 'file'.")
            top_k = _form_int(form.get("top_k", form.get("nb_preds", "3")))
            reject = _form_bool(form.get("reject", "true"), "reject")
            data = await upload.read()
        outcome = await run_in_threadpool(predictor.predict_upload, data, upload.filename, top_k, user)
    elif content_type in ("application/json", ""):
        try:
            body = PredictIn.model_validate_json(await request.body())
        except ValidationError as exc:
            raise InvalidInput(describe_validation_errors(exc.errors())) from None
        reject = body.reject
        outcome = await run_in_threadpool(predictor.predict_url, body.url, body.top_k, user)
    else:
        raise InvalidInput('Send JSON {"url": ..., "top_k": ...} or a multipart upload with a \'file\' field.')
    return PredictionOut.from_outcome(outcome, reject)


@router.get("/recent", response_model=list[PredictionRecordOut], summary="My most recent predictions")
def recent(
    user: CurrentUser, store: StoreDep, settings: SettingsDep, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> list[PredictionRecordOut]:
    return [
        PredictionRecordOut.from_record(p, settings.uncertain_threshold)
        for p in store.recent_predictions(limit, username=user.username)
    ]


@router.get(
    "/{prediction_id}",
    response_model=PredictionRecordOut,
    responses=signed_in(NotFound),
    summary="One of my predictions",
)
def get_prediction(
    prediction_id: str, user: CurrentUser, store: StoreDep, settings: SettingsDep
) -> PredictionRecordOut:
    prediction = store.get_prediction(prediction_id)
    if prediction is None or (prediction.username != user.username and not user.is_admin):
        raise NotFound("No such prediction.")
    return PredictionRecordOut.from_record(prediction, settings.uncertain_threshold)


@router.post(
    "/{prediction_id}/feedback",
    response_model=PredictionRecordOut,
    responses=signed_in(NotFound, InvalidInput, Conflict),
    summary="Confirm or correct the species of a prediction",
)
def feedback(prediction_id: str, body: FeedbackIn, user: CurrentUser, predictor: PredictorDep) -> PredictionRecordOut:
    return PredictionRecordOut.from_record(
        predictor.feedback(prediction_id, body.species, user), predictor.settings.uncertain_threshold
    )


def _form_int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise InvalidInput("top_k must be an integer.") from None


def _form_bool(value: object, name: str) -> bool:
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise InvalidInput(f"{name} must be true or false.")
