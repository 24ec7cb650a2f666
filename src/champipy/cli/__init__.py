"""The ``champipy`` command: one Typer app, each area's commands in its own module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from ..errors import ChampipyError

if TYPE_CHECKING:
    from ..container import Container, RunnerOptions

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ChampiPy: mushroom species from a photo.")


@contextmanager
def open_container(*, serving: bool = False, runner_options: RunnerOptions | None = None) -> Iterator[Container]:
    """The same wiring as the server, for one command; typed errors become clean exits."""
    from ..container import build_container
    from ..settings import get_settings

    try:
        container = build_container(get_settings(), serving=serving, runner_options=runner_options)
    except ChampipyError as exc:
        typer.secho(f"error: {exc.detail}", fg="red", err=True)
        raise typer.Exit(2) from None
    try:
        yield container
    except ChampipyError as exc:
        typer.secho(f"error: {exc.detail}", fg="red", err=True)
        raise typer.Exit(1) from None
    finally:
        container.close()


from . import (  # noqa: E402,F401  (registers the commands)  # noqa: E402,F401  (registers the data and worker commands)
    data,
    models,  # noqa: E402,F401  (registers train, evaluate and models)
    monitor,
    predict,
    replay,
    serve,
    users,
    worker,
)
