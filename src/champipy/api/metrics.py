"""Prometheus metrics of one app instance, served at ``GET /metrics`` (text format).

Public, like /status: the numbers hold no user data (routes are templates, never raw paths
or query strings). Restrict it at the proxy if the deployment needs to.

Each app has its own ``CollectorRegistry``, so tests can build several apps in one process.

- ``champipy_http_requests_total{method,route,status}`` and
  ``champipy_http_request_duration_seconds{method,route,status}``: ``route`` is the route
  template (``/predictions/{prediction_id}``), ``unmatched`` when no route matched.
- ``champipy_predictions_total{cached}``: every answered prediction;
  ``champipy_prediction_cache_hits_total``: those served from the (image hash, model version)
  cache, the same as ``cached="true"``, kept as its own series for dashboards.
- ``champipy_inference_duration_seconds``: decode, preprocessing and ONNX Runtime time of
  each computed (uncached) prediction.
- ``champipy_prediction_top_probability``: top-1 probability of each computed prediction;
  a shift of this distribution is the first sign of data drift.
- Read at scrape time: ``champipy_model_info{name,version}`` (the serving version),
  ``champipy_model_loaded``, ``champipy_model_load_error`` (1 while /status shows an error),
  ``champipy_jobs{state}`` (from the store, cached for a few seconds, capped at
  ``JOB_COUNT_CAP`` per state) and ``champipy_metrics_store_errors_total``.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..container import Container
from ..errors import Unauthorized
from ..services.monitor import MONITOR
from ..store.base import JobState, Prediction

log = logging.getLogger(__name__)

JOB_COUNT_CAP = 1000
JOB_COUNT_TTL_SECONDS = 10.0
UNMATCHED = "unmatched"

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
INFERENCE_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
PROBABILITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
OPEN_SET_MARGIN_BUCKETS = (-5.0, -3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "champipy_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "champipy_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "champipy_predictions",
            "Predictions answered, by whether the result came from the cache.",
            ["cached"],
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "champipy_prediction_cache_hits",
            "Predictions served from the (image hash, model version) cache.",
            registry=self.registry,
        )
        self.inference_seconds = Histogram(
            "champipy_inference_duration_seconds",
            "Decode, preprocessing and inference time of computed predictions.",
            buckets=INFERENCE_BUCKETS,
            registry=self.registry,
        )
        self.top_probability = Histogram(
            "champipy_prediction_top_probability",
            "Top-1 probability of computed predictions (drift signal).",
            buckets=PROBABILITY_BUCKETS,
            registry=self.registry,
        )
        self.unrecognised = Counter(
            "champipy_predictions_unrecognised",
            "Predictions whose open-set score says: not one of the known species.",
            registry=self.registry,
        )
        self.open_set_margin = Histogram(
            "champipy_open_set_score_minus_threshold",
            "Open-set score minus the version's threshold, of computed predictions (above 0: not recognised);"
            " relative to the threshold so that versions compare.",
            buckets=OPEN_SET_MARGIN_BUCKETS,
            registry=self.registry,
        )
        self._state = _StateCollector()
        self.registry.register(self._state)

    # --- wiring ------------------------------------------------------------------------
    def bind(self, container: Container) -> None:
        """Read model and jobs from this container, and count its predictions."""
        self._state.container = container
        container.prediction_events.subscribe(self)

    # --- events ------------------------------------------------------------------------
    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.request_seconds.labels(*labels).observe(seconds)

    def on_prediction(self, prediction: Prediction) -> None:
        """Called by the prediction service for every answered prediction."""
        try:
            self.predictions.labels("true" if prediction.cached else "false").inc()
            verdict = prediction.open_set
            if verdict is not None and not verdict.recognised:
                self.unrecognised.inc()
            if prediction.cached:
                self.cache_hits.inc()
                return
            if prediction.latency_ms is not None:
                self.inference_seconds.observe(prediction.latency_ms / 1000)
            if prediction.results:
                self.top_probability.observe(prediction.results[0].probability)
            if verdict is not None:
                self.open_set_margin.observe(verdict.score - verdict.threshold)
        except Exception:  # a metric must never fail a prediction
            log.warning("could not record prediction metrics", exc_info=True)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector:
    """What is read at scrape time: the serving model and the jobs in the store."""

    def __init__(self) -> None:
        self.container: Container | None = None
        self._lock = threading.Lock()
        self._jobs: dict[str, int] | None = None
        self._jobs_read_at = float("-inf")
        self._last_check: dict[str, Any] | None = None
        self._check_read_at = float("-inf")
        self._queue_depth: int | None = None
        self._queue_read_at = float("-inf")
        self._store_errors = 0

    def describe(self) -> list[Metric]:
        return []  # collected only when a container is bound

    def collect(self) -> Iterator[Metric]:
        container = self.container
        if container is None:
            return
        yield from self._model(container)
        yield from self._job_counts(container)
        yield from self._drift(container)
        yield from self._sign_ins(container)
        yield from self._admission(container)
        yield from self._job_queue(container)

    @staticmethod
    def _admission(container: Container) -> Iterator[Metric]:
        predictor = getattr(container, "predictor", None)
        gate = getattr(predictor, "admission", None)
        if predictor is None or gate is None:
            return
        computing = predictor.computing.count
        yield GaugeMetricFamily(
            "champipy_predictions_pending", "Predictions admitted now (computing or waiting).", value=gate.pending
        )
        yield GaugeMetricFamily(
            "champipy_inferences_in_flight", "Images being decoded and run through the model now.", value=computing
        )
        yield GaugeMetricFamily(
            "champipy_inferences_queued",
            "Admitted predictions waiting for the result of the same image computed by another request.",
            value=max(0, gate.pending - computing),
        )
        yield GaugeMetricFamily(
            "champipy_downloads_in_flight",
            "Image URLs being downloaded for a prediction now.",
            value=predictor.downloads.in_flight,
        )
        yield GaugeMetricFamily(
            "champipy_predictions_pending_limit",
            "Predictions computed at once before 503 (CHAMPIPY_MAX_PENDING_PREDICTIONS).",
            value=gate.limit,
        )
        yield CounterMetricFamily(
            "champipy_predictions_refused_busy",
            "Predictions refused with 503 because the limit was reached.",
            value=gate.refused,
        )

    @staticmethod
    def _sign_ins(container: Container) -> Iterator[Metric]:
        throttle = getattr(getattr(container, "authenticator", None), "throttle", None)
        if throttle is None:
            return
        yield CounterMetricFamily(
            "champipy_login_lockouts", "(user, address) pairs locked after failed sign-ins.", value=throttle.lockouts
        )
        yield CounterMetricFamily(
            "champipy_login_delays",
            "Sign-ins delayed by the per-user limit (attempts from many addresses).",
            value=throttle.delays,
        )

    @staticmethod
    def _model(container: Container) -> Iterator[Metric]:
        provider = getattr(container, "models", None)
        serving = getattr(provider, "serving", None)
        info = GaugeMetricFamily(
            "champipy_model_info", "The model version that serves (value 1).", labels=["name", "version"]
        )
        if serving is not None:
            info.add_metric([serving.name, serving.version], 1)
        yield info
        yield GaugeMetricFamily("champipy_model_loaded", "1 when a model serves.", value=int(serving is not None))
        yield GaugeMetricFamily(
            "champipy_model_load_error",
            "1 while the last registry read or model load failed (see /status).",
            value=int(bool(getattr(provider, "last_error", None))),
        )
        if serving is not None:
            yield GaugeMetricFamily(
                "champipy_model_loaded_timestamp_seconds",
                "When the serving model was loaded.",
                value=serving.loaded_at.timestamp(),
            )

    def _drift(self, container: Container) -> Iterator[Metric]:
        """The live-traffic signals of the last periodic check, from the store: any process
        (a worker, another replica) may have run it."""
        with self._lock:
            now = time.monotonic()
            if now - self._check_read_at >= JOB_COUNT_TTL_SECONDS:
                self._check_read_at = now
                try:
                    events = container.store.list_events(MONITOR, limit=1)
                    self._last_check = events[0].payload if events else None
                except Exception as exc:
                    self._store_errors += 1
                    log.warning("metrics: cannot read the last check: %s", exc)
            check = self._last_check
        if not check:
            return
        values = GaugeMetricFamily(
            "champipy_drift_signal",
            "Each live-traffic signal of the last check (services/drift.py).",
            labels=["signal"],
        )
        alerts = GaugeMetricFamily(
            "champipy_drift_alert", "1 when the last check's signal crossed its threshold.", labels=["signal"]
        )
        for signal in check.get("signals") or []:
            if signal.get("value") is not None:
                values.add_metric([signal["name"]], float(signal["value"]))
            alerts.add_metric([signal["name"]], float(bool(signal.get("alert"))))
        yield values
        yield alerts

    def _job_queue(self, container: Container) -> Iterator[Metric]:
        """Tasks waiting in the queue (SQLite or Redis): what a worker autoscaler reads."""
        runner = getattr(container, "jobs", None)
        if runner is None:
            return
        with self._lock:
            now = time.monotonic()
            if now - self._queue_read_at >= JOB_COUNT_TTL_SECONDS:
                self._queue_read_at = now
                try:
                    self._queue_depth = runner.huey.pending_count()
                except Exception as exc:
                    self._queue_depth = None
                    log.warning("metrics: cannot read the job queue: %s", exc)
            depth = self._queue_depth
        if depth is not None:
            yield GaugeMetricFamily(
                "champipy_job_queue_depth", "Jobs queued and not yet taken by a worker.", value=depth
            )

    def _job_counts(self, container: Container) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if now - self._jobs_read_at >= JOB_COUNT_TTL_SECONDS:
                self._jobs_read_at = now
                try:
                    self._jobs = {
                        state.value: len(container.store.list_jobs(limit=JOB_COUNT_CAP, state=state))
                        for state in JobState
                    }
                except Exception as exc:  # the database is down: say so, keep the other metrics
                    self._store_errors += 1
                    self._jobs = None
                    log.warning("metrics: cannot count jobs: %s", exc)
            jobs, errors = self._jobs, self._store_errors
        if jobs is not None:
            family = GaugeMetricFamily(
                "champipy_jobs", f"Background jobs by state (counted up to {JOB_COUNT_CAP}).", labels=["state"]
            )
            for state, count in jobs.items():
                family.add_metric([state], count)
            yield family
        errors_family = GaugeMetricFamily("champipy_metrics_store_errors", "Scrapes that could not read the store.")
        errors_family.add_metric([], errors)
        yield errors_family


class MetricsMiddleware:
    """Counts and times every HTTP request by route template (set by the router on the scope)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.observe_request(scope["method"], route, status, time.perf_counter() - started)


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics (text format; public unless CHAMPIPY_METRICS_TOKEN is set)",
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
)
def metrics(request: Request) -> Response:
    expected = request.app.state.container.settings.metrics_token
    if expected:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise Unauthorized("/metrics needs Authorization: Bearer with CHAMPIPY_METRICS_TOKEN.")
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI) -> Metrics:
    """A registry for this app, the middleware and the route; ``bind`` once the container exists."""
    metrics = app.state.metrics = Metrics()
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(router)
    return metrics
