"""``champipy replay DIR``: a folder of photos sent to a running service as traffic."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import httpx
import typer

from . import app


@app.command()
def replay(
    folder: Annotated[Path, typer.Argument(help="Photos, in species sub-folders for feedback.")],
    url: Annotated[str, typer.Option(help="The service's base URL.")] = "http://127.0.0.1:8000",
    token: Annotated[
        str | None, typer.Option(help="An API token (default: CHAMPIPY_TOKEN).", envvar="CHAMPIPY_TOKEN")
    ] = None,
    feedback_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of the labelled photos given true-label feedback.")
    ] = 0.0,
    limit: Annotated[int | None, typer.Option(min=1, help="Send at most this many photos.")] = None,
    seed: Annotated[int, typer.Option(help="Order of the photos and choice of the feedback.")] = 0,
) -> None:
    """Send every photo in FOLDER to POST /predictions (in a shuffled order), with expert
    feedback (the species folder's name) on a share of them; prints a JSON summary."""
    from ..replay import replay as send

    if not folder.is_dir():
        raise typer.BadParameter(f"{folder} is not a folder")
    token = token or os.environ.get("CHAMPIPY_TOKEN")
    if not token:
        raise typer.BadParameter("give --token or set CHAMPIPY_TOKEN (POST /tokens makes one)")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60.0, trust_env=False) as client:
        summary = send(client, folder, feedback_share, seed, limit)
    print(json.dumps(summary.as_dict()))
    raise typer.Exit(0 if summary.failed == 0 else 1)
