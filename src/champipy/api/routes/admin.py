"""Admin routes kept from the original (accuracy, past_pred_acc, nb_new_img, finetune) and
the model registry, jobs and monitor routes that Bob uses to run the service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ...app_deps import LifecycleDep, MonitorDep, StoreDep
from ...errors import InvalidInput, NoModel, NotFound, QueueUnavailable
from ...services.monitor import MAX_DAYS, MONITOR
from ...store.base import JobState
from ..deps import AdminUser
from ..errors import admin_only
from ..schemas import FinetuneIn, JobOut, ModelVersionOut, RetrainIn

router = APIRouter(tags=["admin"], responses=admin_only())


@router.get(
    "/accuracy",
    responses=admin_only(InvalidInput, NoModel),
    summary="Evaluate the production model on the evaluation set (cached per version)",
)
async def accuracy(admin: AdminUser, monitor: MonitorDep) -> dict[str, Any]:
    return await run_in_threadpool(monitor.production_accuracy)


@router.get(
    "/past_pred_acc", summary="Mean top probability of the last predictions (and accuracy where experts answered)"
)
def past_pred_acc(
    admin: AdminUser, monitor: MonitorDep, nb_last_preds: Annotated[int, Query(ge=1, le=100_000)] = 100
) -> dict[str, Any]:
    return monitor.past_prediction_accuracy(nb_last_preds)


@router.get(
    "/nb_new_img",
    responses=admin_only(InvalidInput, NotFound),
    summary="Images added since the version at this stage/alias was promoted",
)
def nb_new_img(
    admin: AdminUser,
    monitor: MonitorDep,
    model_name: Annotated[str, Query(max_length=200)] = "champipy",
    stage: Annotated[str, Query(max_length=64)] = "production",
) -> dict[str, Any]:
    return monitor.new_images_since_promotion(model_name, stage)


def _finetune_params(
    model_name: Annotated[str | None, Query(max_length=200)] = None,
    stage: Annotated[str | None, Query(max_length=64)] = None,
    variables: Annotated[int | None, Query(ge=0, le=50, description="blocks to train besides the head")] = None,
    epochs: Annotated[int | None, Query(ge=1, le=100)] = None,
    promote_if_better: Annotated[bool | None, Query()] = None,
    body: Annotated[FinetuneIn | None, Body()] = None,
) -> FinetuneIn:
    """Query parameters like the original, or a JSON body; query parameters win."""
    merged = (body or FinetuneIn()).model_dump()
    for key, value in {
        "model_name": model_name,
        "stage": stage,
        "variables": variables,
        "epochs": epochs,
        "promote_if_better": promote_if_better,
    }.items():
        if value is not None:
            merged[key] = value
    return FinetuneIn.model_validate(merged)


@router.post(
    "/finetune",
    status_code=202,
    response_model=JobOut,
    responses=admin_only(InvalidInput, NotFound, QueueUnavailable),
    summary="Start a fine-tune job on the most recent stored images (answers at once)",
)
def finetune(
    admin: AdminUser, lifecycle: LifecycleDep, params: Annotated[FinetuneIn, Depends(_finetune_params)]
) -> JobOut:
    job = lifecycle.submit_finetune(params.model_dump(), admin.username)
    return JobOut.from_record(job)


@router.get(
    "/finetune",
    status_code=202,
    response_model=JobOut,
    deprecated=True,
    responses=admin_only(InvalidInput, NotFound, QueueUnavailable),
    summary="The original's GET form of /finetune, kept for old scripts: also starts a job",
)
def finetune_get(
    admin: AdminUser, lifecycle: LifecycleDep, params: Annotated[FinetuneIn, Depends(_finetune_params)]
) -> JobOut:
    return finetune(admin, lifecycle, params)


@router.post(
    "/retrain",
    status_code=202,
    response_model=JobOut,
    responses=admin_only(QueueUnavailable),
    summary="Start a retrain job: the default recipe from ImageNet weights on the most recent stored images",
)
def retrain(
    admin: AdminUser,
    lifecycle: LifecycleDep,
    promote_if_better: Annotated[bool | None, Query()] = None,
    body: Annotated[RetrainIn | None, Body()] = None,
) -> JobOut:
    if promote_if_better is None:
        promote_if_better = (body or RetrainIn()).promote_if_better
    job = lifecycle.submit_retrain(promote_if_better, admin.username)
    return JobOut.from_record(job)


@router.get("/jobs", response_model=list[JobOut], summary="Recent background jobs")
def list_jobs(
    admin: AdminUser, store: StoreDep, limit: Annotated[int, Query(ge=1, le=500)] = 50, state: JobState | None = None
) -> list[JobOut]:
    return [JobOut.from_record(j) for j in store.list_jobs(limit=limit, state=state)]


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses=admin_only(NotFound),
    summary="One job: state, progress, result, error",
)
def get_job(job_id: str, admin: AdminUser, store: StoreDep) -> JobOut:
    job = store.get_job(job_id)
    if job is None:
        raise NotFound("No such job.")
    return JobOut.from_record(job)


@router.get("/models", response_model=list[ModelVersionOut], summary="Registered versions, aliases, metrics")
async def list_models(admin: AdminUser, lifecycle: LifecycleDep) -> list[ModelVersionOut]:
    versions = await run_in_threadpool(lifecycle.list_versions)
    return [ModelVersionOut.model_validate(v) for v in versions]


@router.post(
    "/models/{version}/promote",
    response_model=ModelVersionOut,
    responses=admin_only(NotFound),
    summary="Move the production alias to this version; serving follows within seconds",
)
async def promote(version: str, admin: AdminUser, lifecycle: LifecycleDep) -> ModelVersionOut:
    return ModelVersionOut.model_validate(await run_in_threadpool(lifecycle.promote, version, admin.username))


@router.post("/monitor", summary="Run the periodic check now (accuracy and new images against targets)")
async def monitor(admin: AdminUser, monitor: MonitorDep) -> JSONResponse:
    # The same check as the CLI and the scheduled job: history, MLflow, alert, optional retrain.
    result = await run_in_threadpool(monitor.run_check)
    return JSONResponse(result.to_dict())


@router.get(
    "/monitor/open-set",
    summary="Share of recent answers not recognised as a known species, per day, with Wilson 95% intervals",
)
def monitor_open_set(
    admin: AdminUser, monitor: MonitorDep, days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = 30
) -> dict[str, Any]:
    return monitor.open_set_rejections(days)


@router.get(
    "/drift",
    summary="Live-traffic signals now (the serving version's recent window) and at each past check",
)
def drift(
    admin: AdminUser, monitor: MonitorDep, store: StoreDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    history = [
        {
            "checked_at": e.payload.get("checked_at"),
            "model_version": e.payload.get("model_version"),
            "signals": e.payload.get("signals") or [],
        }
        for e in store.list_events(MONITOR, limit=limit)
    ]
    return {"current": [s.to_dict() for s in monitor.live_signals()], "history": history}


@router.get("/monitor/history", summary="Results of past checks, most recent first")
def monitor_history(
    admin: AdminUser, store: StoreDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    return [e.payload for e in store.list_events(MONITOR, limit=limit)]
