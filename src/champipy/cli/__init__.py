"""The ``champipy`` command: one Typer app, each area's commands in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ChampiPy: mushroom species from a photo.")
