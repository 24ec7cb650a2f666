"""Routes kept from the original: /status, /dbconnex, /user."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ... import __version__
from ...app_deps import ContainerDep
from ...container import Container
from ..deps import CurrentUser
from ..errors import signed_in
from ..schemas import DbConnexOut, StatusOut, UserOut

router = APIRouter(tags=["general"])

DB_CHECK_SECONDS = 3.0


@router.get(
    "/status",
    response_model=StatusOut,
    responses={503: {"model": StatusOut, "description": "With ready=true: up, but no model serves yet"}},
    summary="Is the API up, and which model serves",
)
async def status(  # async: answers while the thread pool is full
    container: ContainerDep,
    ready: Annotated[bool, Query(description="503 until a model serves (a readiness probe)")] = False,
) -> StatusOut | JSONResponse:
    answer = StatusOut(status="ok", version=__version__, model=container.model_status())
    if ready and not answer.model.loaded:
        return JSONResponse(answer.model_dump(mode="json"), status_code=503)
    return answer


@router.get("/dbconnex", response_model=DbConnexOut, summary="Can the API reach its database")
async def dbconnex(container: ContainerDep) -> DbConnexOut:
    backend = container.settings.resolved_database_url.split(":", 1)[0]
    return DbConnexOut(connected=await database_answers(container), backend=backend)


async def database_answers(container: Container) -> bool:
    """The store's ping, given at most DB_CHECK_SECONDS (a hung database is a no)."""
    try:
        return await asyncio.wait_for(run_in_threadpool(container.store.ping), DB_CHECK_SECONDS)
    except TimeoutError:
        return False


@router.get("/user", response_model=UserOut, responses=signed_in(), summary="Who am I")
def user(user: CurrentUser) -> UserOut:
    return UserOut(username=user.username, roles=list(user.roles), is_admin=user.is_admin)
