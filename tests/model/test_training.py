"""A tiny real training run (3 species x 6 photos) into a temporary MLflow store: the
registered version, its artifacts, ONNX parity, the CLI, fine-tuning from a version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from champipy.cli import app
from champipy.model.backbone import SpeciesNet
from champipy.model.classifier import META_FILE, MODEL_FILE, Classifier
from champipy.model.data import load_examples
from champipy.model.export import ServingGraph, export_serving_model
from champipy.model.pipeline import load_weights, train_and_register
from champipy.model.preprocess import scale_pixels
from champipy.model.train import (
    OnnxFeatureExtractor,
    TrainConfig,
    config_for,
    export_feature_graph,
    train_model,
)
from champipy.registry import Registry
from champipy.settings import Settings, get_settings
from champipy.store import open_store

pytestmark = pytest.mark.slow

TINY = TrainConfig(backbone="lite0", epochs=1, flip_features=False, seed=0)


@pytest.fixture(scope="module")
def tiny_run(tiny_examples: list, tiny_eval_dir: Path, tiny_ood_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("tiny-registry")
    settings = Settings(data_dir=data_dir, eval_dir=tiny_eval_dir, ood_dir=tiny_ood_dir, mlflow_uri="")
    progress: list[dict] = []
    outcome = train_and_register(settings, tiny_examples, TINY, progress=progress.append)
    return settings, outcome, progress


def test_version_is_registered_with_metrics_and_params(tiny_run) -> None:
    settings, outcome, progress = tiny_run
    info = outcome.version
    assert info.version == "1" and info.run_id
    for key in (
        "val_top1",
        "val_top3",
        "val_ece",
        "val_ece_before",
        "val_ece_after",
        "temperature",
        "eval_top1",
        "eval_top3",
        "eval_ece",
        "eval_ece_if_calibrated",
        "eval_ece_calibration_p",
        "train_seconds",
        "eval_open_set_rejected",
        "ood_auroc",
        "ood_recognised",
        "kept_label_min_probability",
        "kept_label_precision",
        "eval_top1_own_species",
    ):
        assert key in info.metrics, key
    assert info.params["backbone"] == "lite0" and info.params["mode"] == "frozen_features"
    assert json.loads(info.params["labels"]) == outcome.trained.labels
    epochs = [p for p in progress if p.get("stage") == "train"]
    assert epochs and {"epoch", "loss", "accuracy"} <= set(epochs[0])

    registry = Registry(settings)
    assert [v.version for v in registry.list_versions()] == ["1"]
    assert registry.get_version(1).run_id == info.run_id
    assert settings.resolved_mlflow_uri.startswith("sqlite:///") and (settings.data_dir / "mlflow.db").is_file()


def test_run_artifacts(tiny_run) -> None:
    settings, outcome, _ = tiny_run
    registry = Registry(settings)
    client = registry.client
    names = {a.path for a in client.list_artifacts(outcome.version.run_id)}
    assert {
        "manifest.json",
        "history.json",
        "confusion_matrix_val.png",
        "confusion_matrix_eval.png",
        "serving",
        "torch",
    } <= names
    assert {a.path for a in client.list_artifacts(outcome.version.run_id, "serving")} == {
        f"serving/{MODEL_FILE}",
        f"serving/{META_FILE}",
    }
    run_dir = Path(client.get_run(outcome.version.run_id).info.artifact_uri.removeprefix("file://"))
    assert run_dir.is_relative_to(settings.mlflow_artifacts_dir)
    rows = json.loads((run_dir / "manifest.json").read_text())
    assert len(rows) == 18 and all(len(r["sha256"]) == 64 and r["source"] == "folder" for r in rows)
    # fast path: every image trains the final head and is held out in one cross-validation fold
    assert {r["split"] for r in rows} == {"train"} and {r["fold"] for r in rows} == set(range(5))

    weights = load_weights(registry.download_torch_weights(outcome.version.version))
    assert weights["backbone"] == "lite0" and weights["labels"] == outcome.trained.labels
    assert "head.weight" in weights["state_dict"]


def test_serving_model_matches_the_registered_weights(tiny_run, tiny_examples: list) -> None:
    settings, outcome, _ = tiny_run
    registry = Registry(settings)
    directory = registry.download_serving_model("1")
    assert directory == settings.data_dir / "models" / "1"
    meta = json.loads((directory / META_FILE).read_text())
    assert meta["version"] == "1" and meta["image_size"] == 224 and meta["backbone"] == "lite0"
    assert meta["labels"] == outcome.trained.labels and meta["temperature"] == pytest.approx(
        outcome.trained.temperature
    )
    assert set(meta["preprocessing"]) >= {"resize", "crop", "scale"}

    # a second download comes from the cache
    marker = directory / "cached"
    marker.write_text("x")
    assert registry.download_serving_model("1") == directory and marker.exists()

    classifier = Classifier.load(directory, threads=1)
    weights = load_weights(registry.download_torch_weights("1"))
    model = SpeciesNet(weights["backbone"], len(weights["labels"]), weights["image_size"], pretrained=False)
    model.load_state_dict(weights["state_dict"])
    module = ServingGraph(model, weights["temperature"], True).eval()
    batch = scale_pixels(np.stack([item.centre for item in load_examples(tiny_examples[::4], 224)]))
    with torch.no_grad():
        expected = module(torch.from_numpy(batch)).numpy()
    got = classifier.predict_batch(batch)
    assert got.shape == (len(batch), 3)
    # The served backbone is the INT8 one (model/quantise.py); the registered weights (what a
    # fine-tune starts from) are its float original: the same species, close probabilities.
    assert meta["int8"] is True
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert np.abs(got - expected).max() < 0.1
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_a_float_model_matches_torch_exactly(tiny_examples: list, tmp_path: Path) -> None:
    trained = train_model(tiny_examples, TrainConfig(backbone="lite0", calibration_folds=3, int8=False))
    classifier = Classifier.load(export_serving_model(trained, tmp_path / "model"), threads=1)
    module = ServingGraph(trained.model, trained.temperature, True).eval()
    batch = scale_pixels(np.stack([item.centre for item in load_examples(tiny_examples[::4], 224)]))
    with torch.no_grad():
        expected = module(torch.from_numpy(batch)).numpy()
    assert classifier.meta["int8"] is False
    assert np.abs(classifier.predict_batch(batch) - expected).max() < 1e-4


def test_cli_evaluate_list_promote(
    tiny_run, tiny_eval_dir: Path, tiny_ood_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, outcome, _ = tiny_run
    monkeypatch.setenv("CHAMPIPY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CHAMPIPY_MLFLOW_URI", "")
    monkeypatch.delenv("CHAMPIPY_OOD_DIR", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        result = runner.invoke(app, ["evaluate", "--data", str(tiny_eval_dir), "--version", "1", "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["model_version"] == "1" and report["n"] == 12
        assert {"top1", "top3", "n", "per_species", "ece", "ece_if_calibrated", "ece_calibration_p"} <= set(report)
        assert set(report["per_species"]) == set(outcome.trained.labels)
        assert report["top1"] == pytest.approx(outcome.metrics["eval_top1"])
        assert report["open_set"]["ood_n"] == 0  # no --ood, and CHAMPIPY_OOD_DIR is unset here

        result = runner.invoke(app, ["evaluate", "--data", str(tiny_eval_dir), "--ood", str(tiny_ood_dir), "--json"])
        assert result.exit_code == 0, result.output
        open_set = json.loads(result.stdout)["open_set"]
        assert open_set["ood_n"] == 3 and set(open_set["categories"]) == {"noise", "(top folder)"}
        assert open_set["ood_auroc"] == pytest.approx(outcome.metrics["ood_auroc"])
        result = runner.invoke(app, ["evaluate", "--data", str(tiny_eval_dir), "--ood", str(tiny_ood_dir)])
        assert result.exit_code == 0, result.output
        assert "AUROC" in result.output and "noise" in result.output
        assert "a perfectly calibrated model" in result.output
        result = runner.invoke(app, ["evaluate", "--data", str(tiny_eval_dir), "--ood", str(tiny_ood_dir / "none")])
        assert result.exit_code != 0 and "not a folder" in result.output

        result = runner.invoke(app, ["models", "promote", "1"])
        assert result.exit_code == 0, result.output
        registry = Registry(settings)
        assert registry.version_for_alias("production").version == "1"
        assert registry.version_for_alias("Production").version == "1"  # the original's stage name
        store = open_store(settings.resolved_database_url)
        try:
            assert [e.payload["version"] for e in store.list_events("promotion")] == ["1"]
        finally:
            store.close()

        result = runner.invoke(app, ["models", "list", "--json"])
        assert result.exit_code == 0, result.output
        listed = json.loads(result.stdout)
        assert listed[0]["version"] == "1" and "production" in listed[0]["aliases"]

        result = runner.invoke(app, ["evaluate", "--data", str(tiny_eval_dir), "--json"])  # the production alias
        assert result.exit_code == 0 and json.loads(result.stdout)["model_version"] == "1"
    finally:
        get_settings.cache_clear()


def test_fine_tune_from_a_registered_version(tiny_run, tiny_examples: list) -> None:
    settings, outcome, _ = tiny_run
    config = TrainConfig(backbone="lite2", variables=1, epochs=1, seed=0)  # the base's backbone wins
    second = train_and_register(settings, tiny_examples, config, base_version="1")
    assert second.version.version == "2"
    assert second.version.params["base_version"] == "1" and second.version.params["backbone"] == "lite0"
    assert second.version.params["mode"] == "fine_tune"


def test_same_seed_reproduces_the_metrics(tiny_examples: list) -> None:
    config = TrainConfig(backbone="lite0", variables=1, epochs=1, seed=7, threads=1)
    first, second = train_model(tiny_examples, config), train_model(tiny_examples, config)
    timeless = lambda m: {k: v for k, v in m.items() if k != "train_seconds"}  # noqa: E731
    assert timeless(first.metrics) == timeless(second.metrics)
    assert first.history == second.history
    assert first.manifest == second.manifest
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key


def test_a_version_is_registered_only_after_the_parity_check(
    tiny_run, tiny_examples: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    from champipy.model import export

    settings, _, _ = tiny_run
    before = [v.version for v in Registry(settings).list_versions()]
    monkeypatch.setattr(export, "PARITY_TOLERANCE", -1.0)  # no export can pass
    with pytest.raises(export.ExportMismatch):
        train_and_register(settings, tiny_examples, TINY)
    assert [v.version for v in Registry(settings).list_versions()] == before


def test_every_held_out_photo_keeps_its_calibrated_probabilities(tiny_run) -> None:
    _, outcome, _ = tiny_run
    trained = outcome.trained
    held = trained.held_out_predictions
    assert held is not None
    held_out_rows = [row["sha256"] for row in trained.manifest if row["fold"] >= 0]
    assert sorted(held.sha256) == sorted(held_out_rows), "each photo once, by the head that did not see it"
    label_of = {row["sha256"]: row["label"] for row in trained.manifest}
    assert [trained.labels[t] for t in held.targets] == [label_of[sha] for sha in held.sha256], "rows line up"
    assert held.probabilities.shape == (len(held_out_rows), len(trained.labels))
    np.testing.assert_allclose(held.probabilities.sum(axis=1), 1.0, atol=1e-9)
    assert held.top1_hits().mean() == pytest.approx(trained.metrics["val_top1"])


def test_training_features_come_from_the_folded_graph_and_match_torch(tmp_path: Path) -> None:
    model = SpeciesNet("lite0", 3).eval()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, model.image_size, model.image_size)).astype(np.float32)
    with torch.no_grad():
        expected = model.features(torch.from_numpy(x)).numpy()
    graph = onnx.load(str(export_feature_graph(model, tmp_path / "features.onnx")))
    assert not [node for node in graph.graph.node if node.op_type == "Pad"], "every SAME pad folded"
    np.testing.assert_allclose(OnnxFeatureExtractor(model)(x), expected, atol=1e-4)


def test_a_deployment_chooses_its_backbone_and_mirror_averaging() -> None:
    assert config_for(Settings()).backbone == "lite0+lite2" and config_for(Settings()).flip_tta
    assert config_for(Settings()).int8
    cheaper = config_for(Settings(backbone="lite0", mirror_averaging=False))
    assert cheaper.backbone == "lite0" and not cheaper.flip_tta
    assert not config_for(Settings(int8=False)).int8
