"""The species the service knows and the ones experts are teaching it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from ...app_deps import ContainerDep, StoreDep
from ...container import Container
from ...services.species_catalogue import species_overview, suggested_names
from ..deps import AdminUser, CurrentUser
from ..errors import admin_only, signed_in

router = APIRouter(tags=["species"])


def _model_labels(container: Container) -> list[str]:
    serving = container.models.serving if container.models is not None else None
    return list(serving.classifier.labels) if serving is not None else []


@router.get(
    "/species",
    responses=admin_only(),
    summary="Every species of the model or the store: photos per label source, and known / ready / waiting",
)
def species(admin: AdminUser, store: StoreDep, container: ContainerDep) -> dict[str, Any]:
    min_photos = container.settings.new_species_min_photos
    overview = species_overview(store.species_counts(), _model_labels(container), min_photos)
    return {"min_photos": min_photos, "species": [asdict(s) for s in overview]}


@router.get(
    "/species/names",
    responses=signed_in(),
    summary="Names to suggest for feedback: the model's species and every species the store knows",
)
def species_names(user: CurrentUser, store: StoreDep, container: ContainerDep) -> list[str]:
    return suggested_names(store.species_counts(), _model_labels(container))
