"""All configuration, read once from the environment (prefix ``CHAMPIPY_``).

Every external part has an embedded default so that ``champipy serve`` works on a bare
machine: a SQLite database and a local MLflow store inside the data directory, and an
in-process job worker.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from .images import ImageLimits

BACKBONES = ("lite0", "lite1", "lite2")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHAMPIPY_", env_file=None, extra="ignore")

    # Where everything local lives: database file, MLflow store, job queue, model cache.
    data_dir: Path = Path("./data")
    # sqlite:///..., postgresql://..., mongodb://... ; empty means a SQLite file in data_dir.
    database_url: str = ""
    # Tracking + registry URI; empty means a SQLite MLflow store in data_dir.
    mlflow_uri: str = ""
    mlflow_experiment: str = "mlops_project"
    registered_model: str = "champipy"
    production_alias: str = "production"
    # Optional: when set, jobs go through Redis and `champipy worker` consumes them.
    redis_url: str = ""

    # Folders of species sub-folders.
    dataset_dir: Path | None = None
    eval_dir: Path | None = None
    # Images of anything but the known species (any layout: category sub-folders optional):
    # with eval_dir, training and /accuracy measure the open-set verdict against them.
    ood_dir: Path | None = None

    # One EfficientNet-Lite, or an ensemble of several joined by "+" (their features side by
    # side). Chosen by cross-validation (bench/bench_recipes.py): lite0+lite2 is 1.9 points of
    # top-1 above lite2 alone; lite0 alone is the cheapest to serve, at lite2's accuracy.
    backbone: str = "lite0+lite2"
    # Each photo is read with its mirror image and the two answers averaged: +0.7 points of
    # top-1 for lite0+lite2, at twice the inference cost.
    mirror_averaging: bool = True
    # The frozen backbone quantised to INT8 before the head learns its features (model/
    # quantise.py): half the inference time for a few tenths of a point of top-1. Fine-tuned
    # versions always serve in float.
    int8: bool = True

    # The MLOps loop's thresholds.
    store_threshold: float = Field(0.70, ge=0.0, le=1.0)
    uncertain_threshold: float = Field(0.50, ge=0.0, le=1.0)
    # The share of held-out photos of known species that a new version's open-set threshold
    # recognises; the rest of the world (other species, not mushrooms) should fall above it.
    open_set_keep_rate: float = Field(0.98, ge=0.5, lt=1.0)
    # A species named by experts becomes a class once this many of its photos carry a label a
    # person gave (confirmed or imported).
    new_species_min_photos: int = Field(20, ge=2)
    # Predicted labels a retrain learns from must be right this often on the base version's
    # held-out photos; the version's metrics say from which probability that holds.
    kept_label_precision: float = Field(0.98, gt=0.5, le=1.0)
    # Predicted labels stored without a probability (by the original ChampiPy, or before the
    # rule above) still train; off: only curated labels and scored predictions do.
    learn_unscored_predictions: bool = True
    # A retrain takes older photos of a species when the most recent images hold fewer.
    retrain_species_floor: int = Field(30, ge=0)
    target_accuracy: float = Field(0.70, ge=0.0, le=1.0)
    target_new_images: int = Field(500, ge=1)
    retrain_images: int = Field(1000, ge=10)
    retrain_on_new_images: bool = False
    monitor_cron: str = "0 6 * * 1"  # minute hour day month weekday: Mondays 06:00
    # The live-traffic signals read at most this many of the most recent predictions.
    monitor_window: int = Field(5000, ge=10, le=100_000)
    # Drift signals compare the last drift_window distinct images the serving version computed
    # with its held-out photos; below drift_min_window they are not judged. A KS signal alerts
    # at distance >= drift_ks_threshold with p < drift_alpha; the rejected share at p < drift_alpha;
    # expert accuracy from drift_min_feedback answers (bench/bench_drift.py measured the defaults).
    drift_window: int = Field(200, ge=10, le=10_000)
    drift_min_window: int = Field(50, ge=10)
    drift_alpha: float = Field(0.001, gt=0, lt=0.5)
    drift_ks_threshold: float = Field(0.25, gt=0, le=1)
    drift_min_feedback: int = Field(20, ge=1)
    alert_webhook_url: str = ""

    # Mushroom Observer, where `champipy data fetch` and the fetch job download photos.
    mo_api_url: str = "https://mushroomobserver.org"
    mo_request_interval: float = Field(1.0, ge=0)  # seconds between two requests to MO
    mo_timeout: float = Field(30.0, gt=0)

    # Safe fetching of image URLs.
    fetch_allow_hosts: str = ""  # comma-separated host or host:port
    fetch_max_bytes: int = Field(15 * 1024 * 1024, ge=1024)
    fetch_connect_timeout: float = Field(5.0, gt=0)
    fetch_read_timeout: float = Field(15.0, gt=0)
    fetch_max_redirects: int = Field(3, ge=0, le=10)
    fetch_max_connections: int = Field(40, ge=1)  # the worker threads' number (anyio's default)
    fetch_per_user: int = Field(4, ge=1)  # URL downloads in flight per user; more get 429
    url_cache_ttl_seconds: int = Field(24 * 3600, ge=0)
    max_image_pixels: int = Field(40_000_000, ge=1)
    max_image_aspect_ratio: float = Field(20.0, ge=1.0)  # long side / short side
    min_image_side: int = Field(16, ge=1)
    max_upload_bytes: int = Field(15 * 1024 * 1024, ge=1024)
    kept_image_max_side: int = Field(1024, ge=64)  # photos kept for training are shrunk to this
    spool_max_files: int = Field(2000, ge=1)  # uncertain photos kept for later feedback ...
    spool_max_bytes: int = Field(200 * 1024 * 1024, ge=1024)  # ... and their bytes at most
    # Where those photos wait: empty, a folder in data_dir (one machine); with several API
    # replicas, a bucket every replica reads, "s3://bucket/prefix" (services/object_spool.py).
    spool_url: str = ""
    # The S3 API's address for spool_url (SeaweedFS, MinIO, Ceph...); empty: AWS. Credentials
    # come the way boto3 reads them (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).
    s3_endpoint_url: str = ""
    daily_predictions_per_user: int = Field(0, ge=0)  # predictions a user may ask a day; 0: no limit

    # Serving.
    model_poll_seconds: float = Field(10.0, gt=0)
    inference_threads: int = Field(0, ge=0)  # 0: ONNX Runtime decides
    # ONNX Runtime's idle intra-op threads busy-wait for work (its default): one photo answers
    # sooner, but under many concurrent requests they take CPU the others need (bench/README.md,
    # bench_server_settings.py: +6-12% uploads/s at 8 clients and +5-7% p50 without spinning).
    inference_spinning: bool = True
    # Predictions computed at once; more are refused with 503 + Retry-After (cached answers
    # never wait). 16 on 2 cores: at most ~1 s in the queue at ~18 uncached predictions/s.
    max_pending_predictions: int = Field(16, ge=1)
    bootstrap_model: bool = True  # train a first model at start-up when none serves

    # Security.
    secret_key: str = ""  # signs session cookies; empty means generated and kept in data_dir
    admin_password: str = ""  # creates the first admin "admin" on first start when set
    login_max_failures: int = Field(5, ge=1)
    login_lockout_seconds: int = Field(60, ge=1)
    login_user_soft_limit: int = Field(20, ge=1)  # attempts per user name and window, any address
    login_user_delay_seconds: float = Field(1.0, ge=0)  # the wait of each attempt beyond it
    login_concurrent_verifications: int = Field(2, ge=1)  # argon2 checks at once (64 MiB each)
    # A bcrypt hash written by the original system is replaced by argon2id at the next sign-in;
    # false keeps it, so that user can still sign in if the deployment goes back to the original.
    rehash_legacy_passwords: bool = True
    metrics_token: str = ""  # when set, /metrics needs "Authorization: Bearer <this>"
    token_cache_seconds: float = Field(10.0, ge=0)  # how long a bearer token's user is remembered; 0: never

    host: str = "127.0.0.1"
    port: int = 8000
    trusted_proxies: str = ""  # comma-separated addresses whose X-Forwarded-For is believed
    server_limit_concurrency: int = Field(0, ge=0)  # open connections before 503; 0: no limit
    server_keep_alive_seconds: int = Field(5, ge=1)  # idle keep-alive connections are closed after
    log_level: str = "info"

    @field_validator("database_url", "mlflow_uri", "redis_url", "alert_webhook_url", "spool_url", "s3_endpoint_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("dataset_dir", "eval_dir", "ood_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("spool_url")
    @classmethod
    def _bucket_url(cls, value: str) -> str:
        if value and not (value.startswith("s3://") and len(value) > len("s3://")):
            raise ValueError("spool_url is empty (a folder in data_dir) or s3://bucket[/prefix]")
        return value

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str) -> str:
        parts = [p.strip() for p in value.split("+") if p.strip()]
        if not parts or any(p not in BACKBONES for p in parts):
            raise ValueError(f"backbone is one of {', '.join(BACKBONES)}, or several joined by '+'")
        return "+".join(parts)

    @model_validator(mode="after")
    def _known_database_scheme(self) -> Settings:
        # The table open_store reads; importing it loads neither SQLAlchemy nor pymongo.
        from .store.backends import backend_for, known_schemes

        url = self.database_url
        if url and backend_for(url) is None:
            raise ValueError(f"CHAMPIPY_DATABASE_URL must start with {known_schemes()}")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'champipy.db').resolve()}"

    @property
    def resolved_mlflow_uri(self) -> str:
        return self.mlflow_uri or f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return (self.data_dir / "mlartifacts").resolve()

    @property
    def image_limits(self) -> ImageLimits:
        from .images import ImageLimits  # settings stay importable without Pillow

        return ImageLimits(self.max_image_pixels, self.max_image_aspect_ratio, self.min_image_side)

    @property
    def allowed_fetch_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.fetch_allow_hosts.split(",") if h.strip())

    def ensure_data_dir(self) -> Path:
        """The data dir, with the embedded SQLite databases created owner-only (0600) before
        SQLite or MLflow opens them (their journals inherit the mode), like the secret key."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for url in (self.resolved_database_url, self.resolved_mlflow_uri):
            if url.startswith("sqlite:///"):
                _owner_only(Path(url.removeprefix("sqlite:///")))
        if not self.redis_url:
            _owner_only(self.data_dir / "jobs.db")
        return self.data_dir


def _owner_only(path: Path) -> None:
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(path, 0o600)
    except OSError:  # not ours to change (a mounted file, another owner): leave it as it is
        pass


@lru_cache
def get_settings() -> Settings:
    return Settings()
