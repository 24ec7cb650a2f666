"""``champipy train``, ``champipy evaluate`` and ``champipy models list|promote``.

torch is imported only inside ``train``: the other commands run with the serving install.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import ChampipyError
from ..settings import Settings, get_settings
from . import app, open_container

models_app = typer.Typer(no_args_is_help=True, help="Registered model versions.")
app.add_typer(models_app, name="models")

console = Console(stderr=True)


def _fail(message: str) -> NoReturn:
    console.print(f"[red]{message}[/red]")
    raise typer.Exit(1)


def _folder(option: Path | None, fallback: Path | None, env: str) -> Path:
    folder = option or fallback
    if folder is None:
        _fail(f"Give --data DIR or set {env}.")
    if not folder.is_dir():
        _fail(f"{folder} is not a folder of species sub-folders.")
    return folder


@contextmanager
def training_progress(settings: Settings) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A rich progress bar fed by the training pipeline's progress events."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: dict[str, Any] = {}

        def task(stage: str, description: str, total: int | None, info: str = "") -> Any:
            if stage not in tasks:
                tasks[stage] = bar.add_task(description, total=total, info=info)
            return tasks[stage]

        def on_progress(event: dict[str, Any]) -> None:
            stage = event.get("stage")
            if stage == "features":
                bar.update(task(stage, "features", event["total"]), completed=event["done"])
            elif stage == "train":
                info = f"loss {event['loss']:.3f} acc {event['accuracy']:.3f}"
                if "val_accuracy" in event:
                    info += f" val_acc {event['val_accuracy']:.3f}"
                bar.update(task(stage, "epochs", event["epochs"]), completed=event["epoch"], info=info)
            elif stage == "evaluating":
                task(stage, "evaluating", None, str(settings.eval_dir))

        yield on_progress


@app.command()
def train(
    data: Annotated[
        Path | None, typer.Option("--data", help="Folder of species sub-folders (default: CHAMPIPY_DATASET_DIR).")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Fine-tune for N epochs (selects the fine-tune path).")
    ] = None,
    variables: Annotated[
        int | None,
        typer.Option(
            min=0, help="Fine-tune the last N blocks of each backbone (selects the fine-tune path; 0: frozen features)."
        ),
    ] = None,
    backbone: Annotated[
        str | None,
        typer.Option(help="lite0, lite1, lite2 or an ensemble such as lite0+lite2 (default: the measured recipe)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (split, augmentation, initialisation).")] = None,
    base_version: Annotated[
        str | None, typer.Option("--from-version", help="Start from this registered version's weights.")
    ] = None,
    promote: Annotated[bool, typer.Option("--promote", help="Point the production alias at the new version.")] = False,
) -> None:
    """Train a species model, check its ONNX export, evaluate it and register a new version."""
    settings = get_settings()
    folder = _folder(data, settings.dataset_dir, "CHAMPIPY_DATASET_DIR")

    from ..model.data import examples_from_folder
    from ..model.pipeline import train_and_register
    from ..model.train import config_for, config_from_options

    try:
        config = config_from_options(epochs, variables, backbone, seed, base=config_for(settings))
        examples = examples_from_folder(folder)
    except (ChampipyError, ValueError) as exc:
        _fail(str(exc))
    mode = (
        f"fine-tuning the last {config.variables} blocks for {config.resolved_epochs} epochs"
        if config.fine_tune
        else "frozen features + logistic regression"
    )
    console.print(f"Training [bold]{config.backbone}[/bold] ({mode}) on {len(examples)} images from {folder}")

    with training_progress(settings) as on_progress:
        try:
            outcome = train_and_register(settings, examples, config, on_progress, base_version)
        except ChampipyError as exc:
            _fail(str(exc))
    if promote:
        _promote(settings, outcome.version.version, None)
    metrics = outcome.metrics
    console.print(
        f"Registered [bold]{settings.registered_model}[/bold] version [bold]{outcome.version.version}[/bold]"
        f" (run {outcome.version.run_id}) in {metrics['train_seconds']:.0f} s of training"
        + (" — promoted to production" if promote else "")
    )
    shown = [
        k
        for k in ("val_top1", "val_top3", "val_ece", "temperature", "eval_top1", "eval_top3", "eval_ece")
        if k in metrics
    ]
    console.print("  ".join(f"{k} {metrics[k]:.3f}" for k in shown))


@app.command()
def evaluate(
    data: Annotated[
        Path | None, typer.Option("--data", help="Folder of species sub-folders (default: CHAMPIPY_EVAL_DIR).")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Registered version to evaluate.")] = None,
    alias: Annotated[
        str | None, typer.Option(help="Alias to evaluate (default: production, else the latest version).")
    ] = None,
    ood: Annotated[
        Path | None,
        typer.Option(
            "--ood",
            help="Folder of images of anything else (category sub-folders optional), to measure the "
            "open-set verdict (default: CHAMPIPY_OOD_DIR).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
) -> None:
    """Evaluate a registered model (ONNX Runtime) on a folder of labelled photos."""
    settings = get_settings()
    folder = _folder(data, settings.eval_dir, "CHAMPIPY_EVAL_DIR")
    ood = ood or settings.ood_dir
    if version and alias:
        _fail("Give --version or --alias, not both.")

    from ..model.classifier import Classifier
    from ..model.evaluate import evaluate_folder
    from ..registry import Registry

    registry = Registry(settings)
    try:
        info = _resolve_version(registry, settings, version, alias)
        classifier = Classifier.load(registry.download_serving_model(info.version), threads=settings.inference_threads)
        report = evaluate_folder(classifier, folder, max_pixels=settings.max_image_pixels, ood=ood)
    except ChampipyError as exc:
        _fail(str(exc))
    report.model_version = info.version
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    table = Table(title=f"{settings.registered_model} v{info.version} on {folder} (n={report.n})")
    for column in ("species", "n", "precision", "recall"):
        table.add_column(column, justify="left" if column == "species" else "right")
    for species, row in report.per_species.items():
        table.add_row(species, str(row["n"]), f"{row['precision']:.3f}", f"{row['recall']:.3f}")
    Console().print(table)
    check = report.ece_check
    Console().print(
        f"top-1 {report.top1:.3f}  top-3 {report.top3:.3f}  ECE {report.ece:.3f}"
        f" (a perfectly calibrated model: {check.if_calibrated:.3f} on these photos; p = {check.p_value:.2f})"
    )
    if report.open_set is None:
        Console().print(f"v{info.version} has no open-set score: every photo is answered with a species.")
        return
    _print_open_set(report.open_set)


def _print_open_set(report: Any) -> None:
    def rate(r: Any) -> str:
        return f"{r.rate:.3f} [{r.low:.3f}, {r.high:.3f}] ({r.k}/{r.n})"

    out = Console()
    out.print(
        f"open set ({report.method}, threshold {report.threshold:.3f}, keeps {report.keep_rate:.0%} of validation):"
        f"  in-set rejected {rate(report.in_set_rejected)}  top-1 recognised {rate(report.top1_recognised)}"
    )
    if report.ood_recognised is None:
        return
    table = Table(title=f"Out of distribution (n={report.ood_n})")
    for column in ("category", "n", "recognised (95% CI)", "AUROC"):
        table.add_column(column, justify="left" if column == "category" else "right")
    for name, category in report.categories.items():
        shown = "-" if category.auroc is None else f"{category.auroc:.3f}"
        table.add_row(name, str(category.n), rate(category.recognised), shown)
    out.print(table)
    if report.ood_auroc is None:  # no in-set photo decoded: nothing to compare with
        out.print(f"recognised {rate(report.ood_recognised)}")
        return
    out.print(
        f"AUROC {report.ood_auroc:.3f}  recognised {rate(report.ood_recognised)}"
        f"  FPR at {report.keep_rate:.0%} of these in-set photos kept {report.ood_fpr_at_keep_rate:.3f}"
    )


def _resolve_version(registry: Any, settings: Settings, version: str | None, alias: str | None) -> Any:
    if version:
        return registry.get_version(version)
    info = registry.version_for_alias(alias or settings.production_alias)
    if info is not None:
        return info
    if alias:
        _fail(f"No version has the alias {alias!r}.")
    info = registry.latest_version()
    if info is None:
        _fail("No model is registered yet: run `champipy train` first.")
    console.print(f"No production version: evaluating the latest, v{info.version}.")
    return info


@models_app.command("list")
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Registered versions, newest first."""
    from ..registry import Registry

    versions = Registry(get_settings()).list_versions()
    if as_json:
        typer.echo(json.dumps([v.to_dict() for v in versions]))
        return
    table = Table(title="Registered versions")
    for column in (
        "version",
        "aliases",
        "created",
        "backbone",
        "val top-1",
        "eval top-1",
        "eval top-3",
        "eval ECE",
        "run",
    ):
        table.add_column(column)

    def metric(info: Any, key: str) -> str:
        return f"{info.metrics[key]:.3f}" if key in info.metrics else "-"

    for info in versions:
        table.add_row(
            info.version,
            ", ".join(info.aliases),
            info.created_at.strftime("%Y-%m-%d %H:%M"),
            info.params.get("backbone", "-"),
            metric(info, "val_top1"),
            metric(info, "eval_top1"),
            metric(info, "eval_top3"),
            metric(info, "eval_ece"),
            (info.run_id or "")[:8],
        )
    Console().print(table)


@models_app.command("promote")
def promote_model(
    version: Annotated[str, typer.Argument(help="Version to promote.")],
    alias: Annotated[str | None, typer.Option(help="Alias to set (default: production).")] = None,
) -> None:
    """Point the production alias (or --alias) at VERSION; serving processes pick it up."""
    info = _promote(get_settings(), version, alias)
    console.print(f"Version {info.version} now has aliases: {', '.join(info.aliases)}")


def _promote(settings: Settings, version: str, alias: str | None) -> Any:
    """Set the alias and record the promotion in the store (the monitor counts new images
    from that moment)."""
    from ..registry import Registry
    from ..services.lifecycle import ModelLifecycle

    with open_container() as container:
        return ModelLifecycle(settings, container.store, Registry(settings)).promote_version(version, alias)
