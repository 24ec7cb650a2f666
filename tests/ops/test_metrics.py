"""GET /metrics: Prometheus text, per-app registry, route templates, model and job state."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from champipy.api.app import create_app
from champipy.api.metrics import Metrics
from champipy.container import build_container
from champipy.services.prediction_events import PredictionEvents
from champipy.settings import Settings
from champipy.store.base import JobState, Prediction, SpeciesScore
from support.live_server import client, live_server

from .helpers import sample, scrape


def test_metrics_are_public_and_count_requests_by_route_template(plain_http, plain_account):
    plain_http.get("/status")
    plain_http.get("/predictions/abc123", auth=plain_account.auth)  # 404: no such prediction
    plain_http.get("/predictions/def456")  # 401
    plain_http.get("/no/such/page/secret-looking-path")
    samples = scrape(plain_http)

    assert sample(samples, "champipy_http_requests_total", method="GET", route="/status", status="200") == 1
    template = "/predictions/{prediction_id}"
    assert sample(samples, "champipy_http_requests_total", method="GET", route=template, status="404") == 1
    assert sample(samples, "champipy_http_requests_total", method="GET", route=template, status="401") == 1
    assert sample(samples, "champipy_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert (
        sample(samples, "champipy_http_request_duration_seconds_count", method="GET", route=template, status="404") == 1
    )
    text = plain_http.get("/metrics").text
    assert "abc123" not in text and "secret-looking-path" not in text  # never raw paths


def test_each_app_has_its_own_registry(plain_settings, plain_container, plain_http):
    plain_http.get("/status")
    other = create_app(plain_settings, container=plain_container)
    with live_server(other) as base_url, client(base_url) as c:
        samples = scrape(c)
    assert sample(samples, "champipy_http_requests_total", method="GET", route="/status", status="200") is None
    assert sample(samples, "champipy_http_requests_total", method="GET", route="/metrics", status="200") is None
    assert sample(scrape(plain_http), "champipy_http_requests_total", method="GET", route="/status", status="200") == 1


def test_job_counts_come_from_the_store(plain_container, plain_http):
    store = plain_container.store
    for _ in range(2):
        store.add_job("import", {}, None)
    done = store.add_job("import", {}, None)
    store.update_job(done.id, state=JobState.RUNNING)
    store.update_job(done.id, state=JobState.SUCCEEDED)
    samples = scrape(plain_http)
    assert sample(samples, "champipy_jobs", state="queued") == 2
    assert sample(samples, "champipy_jobs", state="running") == 0
    assert sample(samples, "champipy_jobs", state="succeeded") == 1
    assert sample(samples, "champipy_jobs", state="failed") == 0
    assert sample(samples, "champipy_model_loaded") == 0


def _prediction(cached: bool, top: float, latency_ms: float) -> Prediction:
    return Prediction(
        id="p",
        username="u",
        image_sha256="0" * 64,
        model_name="champipy",
        model_version="3",
        results=(SpeciesScore("Amanita muscaria", top), SpeciesScore("Coprinus comatus", 1 - top)),
        source_url=None,
        filename=None,
        cached=cached,
        latency_ms=latency_ms,
        created_at=datetime.now(UTC),
    )


def test_predictions_cache_hits_inference_time_and_top_probability():
    metrics = Metrics()
    events = PredictionEvents()  # what the container gives its prediction service
    serving = SimpleNamespace(name="champipy", version="3", loaded_at=datetime.now(UTC))
    store = SimpleNamespace(list_jobs=lambda limit, state: [])
    metrics.bind(
        SimpleNamespace(prediction_events=events, models=SimpleNamespace(serving=serving, last_error=None), store=store)
    )
    events.on_prediction(_prediction(False, 0.93, 12.0))
    events.on_prediction(_prediction(False, 0.42, 30.0))
    events.on_prediction(_prediction(True, 0.93, 0.0))

    from prometheus_client.parser import text_string_to_metric_families

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(metrics.render().decode())
        for s in f.samples
    }
    assert sample(samples, "champipy_predictions_total", cached="false") == 2
    assert sample(samples, "champipy_predictions_total", cached="true") == 1
    assert sample(samples, "champipy_prediction_cache_hits_total") == 1
    assert sample(samples, "champipy_inference_duration_seconds_count") == 2
    assert abs(sample(samples, "champipy_inference_duration_seconds_sum") - 0.042) < 1e-9
    assert sample(samples, "champipy_prediction_top_probability_bucket", le="0.5") == 1
    assert sample(samples, "champipy_prediction_top_probability_bucket", le="0.95") == 2
    assert sample(samples, "champipy_model_info", name="champipy", version="3") == 1
    assert sample(samples, "champipy_model_loaded") == 1
    assert sample(samples, "champipy_model_load_error") == 0


def test_a_store_failure_does_not_break_the_scrape():
    def broken(limit, state):
        raise RuntimeError("database is down")

    metrics = Metrics()
    metrics.bind(
        SimpleNamespace(prediction_events=PredictionEvents(), models=None, store=SimpleNamespace(list_jobs=broken))
    )
    text = metrics.render().decode()
    assert "champipy_metrics_store_errors 1.0" in text
    assert "champipy_jobs{" not in text
    assert "champipy_model_loaded 0.0" in text


def test_the_job_queue_depth_is_what_waits_for_a_worker(tmp_path):
    # A serving container without a consumer: what it submits stays in the queue (SQLite here,
    # Redis in a deployment), which is what a worker autoscaler reads.
    settings = Settings(data_dir=tmp_path / "data", bootstrap_model=False)
    container = build_container(settings, serving=True)
    try:
        with live_server(create_app(settings, container=container)) as base_url, client(base_url) as c:
            assert sample(scrape(c), "champipy_job_queue_depth") == 0
        for _ in range(2):
            container.jobs.submit("import", {"folder": str(tmp_path)})
        with live_server(create_app(settings, container=container)) as base_url, client(base_url) as c:
            assert sample(scrape(c), "champipy_job_queue_depth") == 2  # a new app: nothing cached
    finally:
        container.close()
