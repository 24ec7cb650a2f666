"""``champipy monitor``: the periodic check (the original's "model perf tracker")."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from . import app, open_container

console = Console()


@app.command()
def monitor(as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Check accuracy and new images against the targets; exit 1 and alert when one is crossed."""
    with open_container(serving=True) as container:
        assert container.models is not None and container.monitor is not None
        container.models.refresh()
        result = container.monitor.run_check()
    if as_json:
        print(json.dumps(result.to_dict()))
    else:
        accuracy = "n/a" if result.accuracy is None else f"{result.accuracy:.3f}"
        console.print(
            f"model version {result.model_version or '-'} · accuracy {accuracy} · "
            f"new images {result.nb_new_img if result.nb_new_img is not None else '-'}"
        )
        for alert in result.alerts:
            console.print(f"[red]ALERT[/] {alert}")
        if result.ok:
            console.print("[green]OK[/]: within targets")
    raise typer.Exit(0 if result.ok else 1)
