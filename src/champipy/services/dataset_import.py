"""Loading a folder of species sub-folders into the store as imported, labelled images."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ChampipyError, InvalidInput
from ..images import decode_image, sha256_hex
from ..settings import Settings
from ..store.base import LabelSource, NewImage
from ..store.ports import ImageRepository

MAX_PACE_SECONDS = 10.0
REJECTED_LISTED = 100  # a summary names this many rejected files; the count covers all


@dataclass
class ImportSummary:
    total: int = 0
    added: int = 0
    duplicates: int = 0
    rejected: int = 0
    added_per_species: Counter[str] = field(default_factory=Counter)
    rejected_files: list[dict[str, str]] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.added + self.duplicates + self.rejected

    def counts(self) -> dict[str, int]:
        return {
            "done": self.done,
            "total": self.total,
            "added": self.added,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.counts(),
            "added_per_species": dict(sorted(self.added_per_species.items())),
            "rejected_files": self.rejected_files,
        }

    def reject(self, path: str, reason: str) -> None:
        self.rejected += 1
        if len(self.rejected_files) < REJECTED_LISTED:
            self.rejected_files.append({"path": path, "reason": reason})


Progress = Callable[[ImportSummary], None]


def list_dataset(root: Path) -> list[tuple[str, Path]]:
    """(species, file) for every visible file under ``root/<species>/``, in a stable order.

    Files directly under ``root`` come with an empty species, to be reported as rejected.
    """
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a folder.")
    entries: list[tuple[str, Path]] = []
    for child in sorted(root.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            entries.extend(
                (child.name.strip(), path)
                for path in sorted(child.rglob("*"))
                if path.is_file() and not _hidden(path, child)
            )
        elif child.is_file():
            entries.append(("", child))
    return entries


def import_folder(
    store: ImageRepository,
    root: Path,
    settings: Settings,
    *,
    username: str | None = None,
    on_progress: Progress | None = None,
    pace_seconds: float = 0.0,
) -> ImportSummary:
    """Store every image once (by SHA-256) with its folder's name as label.

    ``pace_seconds`` waits after each file: a polite pace for shared databases, and a way
    for tests to make an import last.
    """
    root = Path(root)
    pace_seconds = min(max(pace_seconds, 0.0), MAX_PACE_SECONDS)
    entries = list_dataset(root)
    summary = ImportSummary(total=len(entries))
    if on_progress:
        on_progress(summary)
    for species, path in entries:
        relative = path.relative_to(root).as_posix()
        _import_one(store, settings, summary, species, path, relative, username)
        if on_progress:
            on_progress(summary)
        if pace_seconds:
            time.sleep(pace_seconds)
    return summary


def _import_one(
    store: ImageRepository,
    settings: Settings,
    summary: ImportSummary,
    species: str,
    path: Path,
    relative: str,
    username: str | None,
) -> None:
    if not species:
        summary.reject(relative, "not inside a species folder")
        return
    try:
        if path.stat().st_size > settings.max_upload_bytes:
            summary.reject(relative, f"larger than {settings.max_upload_bytes:,} bytes")
            return
        data = path.read_bytes()
        decode_image(data, settings.image_limits)  # refuses non-images and bombs
    except ChampipyError as exc:
        summary.reject(relative, exc.detail)
        return
    except OSError as exc:
        summary.reject(relative, f"cannot be read: {exc.strerror or exc}")
        return
    image = NewImage(
        sha256=sha256_hex(data),
        data=data,
        label=species,
        label_source=LabelSource.IMPORTED,
        filename=path.name,
        username=username,
    )
    if store.add_image(image):
        summary.added += 1
        summary.added_per_species[species] += 1
    else:
        summary.duplicates += 1


def _hidden(path: Path, top: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(top).parts)
