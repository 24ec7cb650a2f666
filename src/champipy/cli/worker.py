"""``champipy worker``: a separate process consuming jobs (from Redis when configured)."""

from __future__ import annotations

import logging

import typer

from ..jobs.kinds import DEFAULT_QUEUE_NAME
from . import app, open_container

log = logging.getLogger(__name__)


@app.command()
def worker(
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Jobs run at the same time (threads)."),
    periodic: bool = typer.Option(True, "--periodic/--no-periodic", help="Also run the schedule (monitor checks)."),
    queue: str = typer.Option(DEFAULT_QUEUE_NAME, help="Queue name, when several deployments share one Redis."),
    heartbeat_seconds: float = typer.Option(10.0, min=0.1, help="How often a running job shows it is alive."),
    stale_after_seconds: float = typer.Option(
        90.0, min=0.5, help="A running job silent this long is marked failed (its worker died)."
    ),
) -> None:
    """Run jobs until interrupted: Ctrl-C lets running jobs finish, SIGTERM stops at once."""
    from ..container import RunnerOptions
    from ..jobs import JobConsumer
    from ..logs import configure_logging
    from ..settings import get_settings

    if stale_after_seconds < 3 * heartbeat_seconds:
        raise typer.BadParameter("--stale-after-seconds must be at least 3 heartbeats long")
    configure_logging(get_settings().log_level)
    options = RunnerOptions(
        queue_name=queue, heartbeat_seconds=heartbeat_seconds, stale_after_seconds=stale_after_seconds
    )
    with open_container(serving=True, runner_options=options) as container:
        settings, runner = container.settings, container.jobs
        assert runner is not None  # a serving container has a job runner
        source = "Redis" if settings.redis_url else f"SQLite ({settings.data_dir / 'jobs.db'})"
        log.info(
            "worker consuming queue %r from %s with %d thread(s); kinds: %s",
            queue,
            source,
            workers,
            ", ".join(runner.kinds),
        )
        JobConsumer(runner, workers=workers, periodic=periodic).run()
