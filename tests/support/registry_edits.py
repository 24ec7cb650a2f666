"""Registry changes made behind the service's back, as a data scientist would in MLflow."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from champipy.artifacts import META_FILE, MODEL_FILE, SERVING_ARTIFACTS
from champipy.registry import Registry


def register_copy_of(settings, version: str) -> str:
    """A new version with the same artifacts: cheap, and a real registry version."""
    registry = Registry(settings)
    source = registry.get_version(version)
    created = registry.client.create_model_version(
        settings.registered_model, source=source.source, run_id=source.run_id
    )
    return str(created.version)


def register_corrupt_version(settings, like_version: str) -> str:
    """A version whose model.onnx is garbage but whose metadata looks right."""
    registry = Registry(settings)
    good = registry.get_version(like_version)
    client = registry.client
    run = client.create_run(client.get_run(good.run_id).info.experiment_id, run_name="corrupt")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        meta_source = Path(registry.download_serving_model(like_version)) / META_FILE
        meta = json.loads(meta_source.read_text())
        (folder / META_FILE).write_text(json.dumps({k: v for k, v in meta.items() if k not in ("version", "run_id")}))
        (folder / MODEL_FILE).write_bytes(b"this is not an ONNX model" * 100)
        client.log_artifacts(run.info.run_id, str(folder), SERVING_ARTIFACTS)
    client.set_terminated(run.info.run_id, "FINISHED")
    created = client.create_model_version(
        settings.registered_model, source=f"{run.info.artifact_uri}/{SERVING_ARTIFACTS}", run_id=run.info.run_id
    )
    return str(created.version)


def set_alias(settings, version: str) -> None:
    Registry(settings).client.set_registered_model_alias(settings.registered_model, settings.production_alias, version)


def remove_alias(settings) -> None:
    Registry(settings).client.delete_registered_model_alias(settings.registered_model, settings.production_alias)


def register_version_without_open_set(settings, like_version: str) -> str:
    """A version as registered before open-set answers existed: the same network with its
    probabilities as the only ONNX output (the score's nodes and statistics cut away by
    ``onnx.utils.extract_model``) and no ``open_set`` in its metadata."""
    import onnx.utils

    registry = Registry(settings)
    good = registry.get_version(like_version)
    client = registry.client
    run = client.create_run(client.get_run(good.run_id).info.experiment_id, run_name="before-open-set")
    source = Path(registry.download_serving_model(like_version))
    meta = json.loads((source / META_FILE).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        old_meta = {k: v for k, v in meta.items() if k not in ("version", "run_id", "open_set", "drift_reference")}
        (folder / META_FILE).write_text(json.dumps(old_meta))
        graph = onnx.load(str(source / MODEL_FILE)).graph
        inputs, probabilities = [i.name for i in graph.input], graph.output[0].name
        onnx.utils.extract_model(str(source / MODEL_FILE), str(folder / MODEL_FILE), inputs, [probabilities])
        client.log_artifacts(run.info.run_id, str(folder), SERVING_ARTIFACTS)
    client.set_terminated(run.info.run_id, "FINISHED")
    created = client.create_model_version(
        settings.registered_model, source=f"{run.info.artifact_uri}/{SERVING_ARTIFACTS}", run_id=run.info.run_id
    )
    return str(created.version)
