"""``champipy data …``: load labelled images into the store, from a folder or from Mushroom Observer."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import app, open_container

data_app = typer.Typer(no_args_is_help=True, help="Load labelled images into the store.")
app.add_typer(data_app, name="data")
console = Console()


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@data_app.command("import")
def import_dataset(
    directory: Path = typer.Argument(
        ..., exists=True, file_okay=False, resolve_path=True, help="A folder of species sub-folders."
    ),
    username: str = typer.Option(None, help="Recorded as the images' uploader."),
) -> None:
    """Store every image of DIRECTORY/<species>/ with label <species> (source: imported)."""
    from ..services.dataset_import import import_folder

    with open_container() as container, _progress_bar() as progress:
        task = progress.add_task("importing", total=None)
        summary = import_folder(
            container.store,
            directory,
            container.settings,
            username=username,
            on_progress=lambda current: progress.update(task, total=current.total, completed=current.done),
        )

    table = Table("species", "added")
    for species, added in sorted(summary.added_per_species.items()):
        table.add_row(species, str(added))
    console.print(table)
    for rejected in summary.rejected_files:
        console.print(f"[yellow]skipped[/] {rejected['path']}: {rejected['reason']}")
    console.print(
        f"{summary.added} added, {summary.duplicates} already stored, {summary.rejected} skipped, {summary.total} files"
    )


@data_app.command("fetch")
def fetch(
    species: list[str] = typer.Option(..., "--species", "-s", help="A species name; repeat for several."),
    limit: int = typer.Option(100, min=1, help="Photos to keep per species (already stored ones count)."),
    interval: float = typer.Option(
        None, min=0, help="Seconds between requests to MO (default CHAMPIPY_MO_REQUEST_INTERVAL, 1)."
    ),
    api_url: str = typer.Option(None, help="MO base URL (default CHAMPIPY_MO_API_URL, https://mushroomobserver.org)."),
    username: str = typer.Option(None, help="Recorded as the images' uploader."),
) -> None:
    """Download reusable (Creative Commons, exportable) photos of each species from Mushroom Observer."""
    from ..mushroom_observer import MushroomObserverClient, fetch_species

    overrides = {k: v for k, v in {"mo_request_interval": interval, "mo_api_url": api_url}.items() if v is not None}
    with open_container() as container, _progress_bar() as progress:
        tasks = {name: progress.add_task(name, total=limit) for name in species}

        def show(name: str, current) -> None:
            counts = current.species[name]
            progress.update(tasks[name], completed=counts.kept)

        with MushroomObserverClient.from_settings(container.settings.model_copy(update=overrides)) as client:
            summary = fetch_species(
                container.store, container.settings, client, species, limit=limit, username=username, on_progress=show
            )

    table = Table("species", "added", "already stored", "licence not reusable", "failed")
    for name, counts in summary.species.items():
        table.add_row(name, str(counts.added), str(counts.duplicates), str(counts.not_reusable), str(counts.failed))
    console.print(table)
    for failure in summary.failures:
        console.print(f"[yellow]failed[/] {failure['url']}: {failure['reason']}")
