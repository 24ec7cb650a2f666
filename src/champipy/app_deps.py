"""FastAPI dependencies that both the API routes and the web pages use: the container of
this app and its services, each typed. (Sign-in dependencies are in ``api.deps``.)"""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, Request

from .container import Container
from .errors import NoModel
from .services.lifecycle import ModelLifecycle
from .services.monitor import Monitor
from .services.observations import ObservationService
from .services.predict import PredictionService
from .settings import Settings
from .store.base import Store


async def get_container(request: Request) -> Container:  # async: no thread-pool hop
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_store(container: ContainerDep) -> Store:
    return container.store


StoreDep = Annotated[Store, Depends(get_store)]


async def get_settings(container: ContainerDep) -> Settings:
    return container.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]

_Part = TypeVar("_Part")


def _serving(part: _Part | None) -> _Part:
    if part is None:  # an app built on a store-only container (some tests, tools)
        raise NoModel("This process serves no model.")
    return part


async def get_predictor(container: ContainerDep) -> PredictionService:
    return _serving(container.predictor)


async def get_lifecycle(container: ContainerDep) -> ModelLifecycle:
    return _serving(container.lifecycle)


async def get_monitor(container: ContainerDep) -> Monitor:
    return _serving(container.monitor)


async def get_observations(container: ContainerDep) -> ObservationService:
    return _serving(container.observations)


PredictorDep = Annotated[PredictionService, Depends(get_predictor)]
ObservationsDep = Annotated[ObservationService, Depends(get_observations)]
LifecycleDep = Annotated[ModelLifecycle, Depends(get_lifecycle)]
MonitorDep = Annotated[Monitor, Depends(get_monitor)]
