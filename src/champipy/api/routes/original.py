"""The original ChampiPy's API, answer for answer, under ``/v0``: for its scripts and its tests.

The modern routes keep their JSON objects; a client written for the original points its base
URL at ``/v0`` and gets what the original answered: ``true`` from /status, a sentence from
/user, ``[{"name", "proba"}]`` in percent from /predictions, bare numbers from /accuracy,
/past_pred_acc and /nb_new_img, and the original's status codes (418 for a photo that is not
one or a bad ``nb_preds``, 512 when the database fails, 401 for a non-admin on an admin route).
A prefix rather than a mode switch: one deployment serves old scripts and new clients at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ...app_deps import ContainerDep, LifecycleDep, MonitorDep, PredictorDep, SettingsDep
from ...errors import InvalidInput, NotAnImage, StoreUnavailable, Unauthorized, UnsupportedImageShape
from ...services.lifecycle import ModelLifecycle
from ...store.base import Job, JobState, User
from ..deps import CurrentUser
from .general import database_answers

router = APIRouter(prefix="/v0", tags=["original (v0)"])

ORIGINAL_MODEL_NAME = "VGG16"  # what the original registered; an alias of ours here
IM_A_TEAPOT = 418  # the original's answer to a photo it could not read and to a bad nb_preds
DATABASE_FAILED = 512
FINETUNE_POLL_SECONDS = 1.0


def original_admin(user: CurrentUser) -> User:
    if not user.is_admin:  # the original answered 401, not 403
        raise Unauthorized("This needs the admin role.")
    return user


OriginalAdmin = Annotated[User, Depends(original_admin)]


def our_model_name(
    settings: SettingsDep, model_name: Annotated[str, Query(max_length=200)] = ORIGINAL_MODEL_NAME
) -> str:
    return settings.registered_model if model_name == ORIGINAL_MODEL_NAME else model_name


ModelName = Annotated[str, Depends(our_model_name)]


@contextmanager
def original_status_codes() -> Iterator[None]:
    try:
        yield
    except (NotAnImage, UnsupportedImageShape, InvalidInput) as exc:
        raise HTTPException(IM_A_TEAPOT, exc.detail) from exc
    except StoreUnavailable as exc:
        raise HTTPException(DATABASE_FAILED, exc.detail) from exc


def percent(fraction: float | None) -> float | None:
    return None if fraction is None else round(100 * fraction, 2)


@router.get("/status", summary="true while the API is up")
async def status() -> bool:
    return True


@router.get("/dbconnex", summary="true when the database answers")
async def dbconnex(container: ContainerDep) -> bool:
    return await database_answers(container)


@router.get("/user", summary="The original's greeting")
def user(user: CurrentUser) -> str:
    return f"Hello {user.username}, are you admin ? {user.is_admin}"


@router.get("/predictions", summary="[{name, proba (percent)}] for the photo at a URL, best first")
async def predictions(
    user: CurrentUser,
    predictor: PredictorDep,
    file: Annotated[str, Query(min_length=1, max_length=4096)],
    nb_preds: Annotated[str, Query()] = "1",
) -> list[dict[str, Any]]:
    with original_status_codes():
        try:
            top_k = int(nb_preds)
        except ValueError:
            raise InvalidInput("nb_preds must be an integer.") from None
        outcome = await run_in_threadpool(predictor.predict_url, file, top_k, user)
    return [{"name": s.species, "proba": percent(s.probability)} for s in outcome.results]


@router.get("/accuracy", summary="Top-1 accuracy of the production model on the evaluation set, percent")
async def accuracy(admin: OriginalAdmin, monitor: MonitorDep) -> float | None:
    with original_status_codes():
        report = await run_in_threadpool(monitor.production_accuracy)
    return percent(report["top1"])


@router.get("/past_pred_acc", summary="Mean top probability of the last predictions, percent")
def past_pred_acc(
    admin: OriginalAdmin, monitor: MonitorDep, nb_last_preds: Annotated[int, Query(ge=1, le=100_000)] = 10
) -> float | None:
    with original_status_codes():
        return percent(monitor.past_prediction_accuracy(nb_last_preds)["mean_probability"])


@router.get("/nb_new_img", summary="Images added since the version at this stage was promoted")
def nb_new_img(
    admin: OriginalAdmin,
    monitor: MonitorDep,
    model_name: ModelName,
    stage: Annotated[str, Query(max_length=64)] = "Production",
) -> int:
    with original_status_codes():
        return int(monitor.new_images_since_promotion(model_name, stage)["nb_new_img"])


@router.get("/finetune", summary="Fine-tune and wait for it, as the original did; the new version's metrics")
async def finetune(
    admin: OriginalAdmin,
    lifecycle: LifecycleDep,
    model_name: ModelName,
    stage: Annotated[str, Query(max_length=64)] = "Production",
    variables: Annotated[int, Query(ge=0, le=50)] = 2,
    epochs: Annotated[int, Query(ge=1, le=100)] = 5,
) -> dict[str, Any]:
    # Through the job queue like every training (one at a time, on a worker when there are
    # workers), then waited for: the original's scripts expect the answer at the end.
    params = {"model_name": model_name, "stage": stage, "variables": variables, "epochs": epochs}
    with original_status_codes():
        job = lifecycle.submit_finetune(params, admin.username)
        while job.state not in (JobState.SUCCEEDED, JobState.FAILED):
            await asyncio.sleep(FINETUNE_POLL_SECONDS)
            job = await run_in_threadpool(_job_now, lifecycle, job)
    if job.state is JobState.FAILED or job.result is None:
        raise HTTPException(500, f"The fine-tune failed: {job.error}")
    return dict(job.result.get("metrics", {}))


def _job_now(lifecycle: ModelLifecycle, job: Job) -> Job:
    return lifecycle.store.get_job(job.id) or job
