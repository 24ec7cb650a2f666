"""``champipy predict``: the serving path, locally, without a server."""

from __future__ import annotations

import getpass
from pathlib import Path

import typer
from rich.console import Console

from . import app, open_container

console = Console()


@app.command()
def predict(
    source: str = typer.Argument(..., help="An image URL (http/https) or a local file."),
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, help="How many species to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Predict the species of one photo with the production model (stored like any prediction)."""
    from ..api.schemas import PredictionOut
    from ..store.base import User

    local_user = User(username=f"cli-{getpass.getuser()}", password_hash="", roles=("user",))
    with open_container(serving=True) as container:
        assert container.models is not None and container.predictor is not None
        container.models.refresh()
        if source.startswith(("http://", "https://")):
            outcome = container.predictor.predict_url(source, top_k, local_user)
        else:
            path = Path(source)
            if not path.is_file():
                raise typer.BadParameter(f"{source} is neither an http(s) URL nor a file")
            outcome = container.predictor.predict_upload(path.read_bytes(), path.name, top_k, local_user)
    p = outcome.prediction
    if as_json:  # the same document as the API's answer
        print(PredictionOut.from_outcome(outcome).model_dump_json())
        return
    for score in outcome.results:
        console.print(f"{score.probability:6.1%}  {score.species}")
    notes = ["cached" if p.cached else "computed", f"model {p.model_name} v{p.model_version}"]
    if outcome.uncertain:
        notes.append("[yellow]uncertain[/]")
    console.print(" · ".join(notes))
