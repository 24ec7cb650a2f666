"""Which species the service knows, and which it could learn next.

A species is *known* when the serving version has it as a label, *ready* when the store holds
at least ``new_species_min_photos`` photos labelled by a person (confirmed by an expert or
imported from a curated folder), *waiting* below that; the two special answers ("not a
mushroom", "unknown species") are listed but never become a class.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from ..species_names import is_trainable
from ..store.records import SpeciesCount


class SpeciesState(StrEnum):
    KNOWN = "known"
    READY = "ready"
    WAITING = "waiting"
    SPECIAL = "special"


@dataclass(frozen=True)
class SpeciesStatus:
    species: str
    state: SpeciesState
    in_model: bool
    confirmed: int
    predicted: int
    imported: int


def species_overview(
    counts: Iterable[SpeciesCount], model_labels: Collection[str], min_photos: int
) -> list[SpeciesStatus]:
    """Every species of the model or the store, the model's own first, each group by name."""
    by_name = {count.species: count for count in counts}
    for label in model_labels:
        by_name.setdefault(label, SpeciesCount(label))
    statuses = [
        SpeciesStatus(
            species=name,
            state=_state(count, name in model_labels, min_photos),
            in_model=name in model_labels,
            confirmed=count.confirmed,
            predicted=count.predicted,
            imported=count.imported,
        )
        for name, count in by_name.items()
    ]
    order = list(SpeciesState)
    return sorted(statuses, key=lambda s: (order.index(s.state), s.species))


def learnable_species(counts: Iterable[SpeciesCount], min_photos: int) -> list[str]:
    """Species with enough photos labelled by a person to become a class, by name."""
    return sorted(c.species for c in counts if is_trainable(c.species) and c.curated >= min_photos)


def suggested_names(counts: Iterable[SpeciesCount], model_labels: Iterable[str]) -> list[str]:
    """The names to offer an expert: the model's species and every species the store knows."""
    return sorted({*model_labels, *(c.species for c in counts if is_trainable(c.species))})


def _state(count: SpeciesCount, in_model: bool, min_photos: int) -> SpeciesState:
    if in_model:
        return SpeciesState.KNOWN
    if not is_trainable(count.species):
        return SpeciesState.SPECIAL
    return SpeciesState.READY if count.curated >= min_photos else SpeciesState.WAITING
