"""Send a folder of photos through a running ChampiPy as traffic, so a team can rehearse
drift: each photo is uploaded to POST /predictions, and for a share of those in a species
folder the folder's name goes back as expert feedback.

Photos directly in the folder (or in a folder that is not a species name) are sent without
feedback, like photos of unknown things.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .model.data import IMAGE_SUFFIXES


@dataclass
class ReplaySummary:
    sent: int = 0
    failed: int = 0
    feedback: int = 0
    unrecognised: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "feedback": self.feedback,
            "unrecognised": self.unrecognised,
            "errors": self.errors[:20],
        }


def photos_of(folder: Path) -> list[tuple[Path, str | None]]:
    """(photo, its species folder's name or None), in a stable order."""
    found: list[tuple[Path, str | None]] = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            label = path.parent.name if path.parent != folder else None
            found.append((path, label))
    return found


def replay(
    client: httpx.Client,
    folder: Path,
    feedback_share: float = 0.0,
    seed: int = 0,
    limit: int | None = None,
    on_photo: Callable[[ReplaySummary], None] | None = None,
) -> ReplaySummary:
    """``client`` has the service's base URL and credentials."""
    rng = random.Random(seed)
    photos = photos_of(folder)
    rng.shuffle(photos)  # traffic arrives mixed, not species by species
    summary = ReplaySummary()
    for path, label in photos[:limit]:
        answer = client.post("/predictions", files={"file": (path.name, path.read_bytes())}, data={"top_k": "1"})
        if answer.status_code != 200:
            summary.failed += 1
            summary.errors.append(f"{path.name}: {answer.status_code} {answer.text[:200]}")
            continue
        summary.sent += 1
        body = answer.json()
        summary.unrecognised += body.get("recognised") is False
        if label and rng.random() < feedback_share:
            given = client.post(f"/predictions/{body['id']}/feedback", json={"species": label})
            if given.status_code == 200:
                summary.feedback += 1
            else:
                summary.errors.append(f"feedback on {path.name}: {given.status_code} {given.text[:200]}")
        if on_photo:
            on_photo(summary)
    return summary
