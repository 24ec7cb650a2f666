"""INT8 backbones (model/quantise.py, model/int8_export.py): the served graph is the quantised
feature graph the head was fitted on, followed by that head; the export refuses a join that
answers otherwise; fine-tuned and opted-out models serve in float."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest
import torch

from champipy.model import int8_export
from champipy.model.calibrate import softmax
from champipy.model.classifier import Classifier
from champipy.model.data import load_examples
from champipy.model.export import ExportMismatch, export_serving_model
from champipy.model.preprocess import scale_pixels
from champipy.model.quantise import CALIBRATION_PHOTOS, _merge_every, calibration_crops
from champipy.model.train import TrainConfig, train_model

pytestmark = pytest.mark.slow

TINY = TrainConfig(backbone="lite0", calibration_folds=3, seed=0)


@pytest.fixture(scope="module")
def int8_model(tiny_examples: list):
    return train_model(tiny_examples, TINY)


def test_the_served_graph_is_the_quantised_features_then_the_head(int8_model, tiny_examples: list, tmp_path) -> None:
    trained = int8_model
    assert trained.int8_features is not None and trained.metrics["val_top1"] > 0.5
    classifier = Classifier.load(export_serving_model(trained, tmp_path / "model"))
    assert classifier.meta["int8"] is True

    photos = scale_pixels(np.stack([item.centre for item in load_examples(tiny_examples[::3], 224)]))
    quantised = ort.InferenceSession(trained.int8_features, providers=["CPUExecutionProvider"])
    features = (quantised.run(None, {"image": photos})[0] + quantised.run(None, {"image": photos[..., ::-1]})[0]) / 2
    weight, bias = trained.model.head.weight.detach().numpy(), trained.model.head.bias.detach().numpy()
    expected = softmax(features @ weight.T + bias, trained.temperature)
    np.testing.assert_allclose(classifier.predict_batch(photos), expected, atol=1e-4)


def test_quantised_answers_stay_close_to_float(int8_model, tiny_examples: list) -> None:
    """The head learnt the quantised features; the float backbone under the same head answers
    the same species for every photo (what bench_int8.py measures at scale)."""
    trained = int8_model
    photos = scale_pixels(np.stack([item.centre for item in load_examples(tiny_examples, 224)]))
    quantised = ort.InferenceSession(trained.int8_features, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        float_logits = trained.model(torch.from_numpy(photos)).numpy()
        int8_logits = trained.model.head(torch.from_numpy(quantised.run(None, {"image": photos})[0])).numpy()
    assert (float_logits.argmax(axis=1) == int8_logits.argmax(axis=1)).mean() >= 0.9


def test_a_join_that_answers_otherwise_is_refused(int8_model, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(int8_export.MirrorBatch, "forward", lambda self, image: torch.cat([image, image], dim=0))
    with pytest.raises(ExportMismatch, match="INT8 feature graph"):
        export_serving_model(int8_model, tmp_path / "model")


def test_without_mirror_averaging_the_graph_takes_the_photo_alone(tiny_examples: list, tmp_path) -> None:
    trained = train_model(tiny_examples, replace(TINY, flip_tta=False))
    classifier = Classifier.load(export_serving_model(trained, tmp_path / "model"))
    assert classifier.meta["int8"] is True and classifier.meta["flip_tta"] is False
    assert classifier.predict_batch(np.zeros((2, 3, 224, 224), dtype=np.float32)).shape == (2, 3)


def test_fine_tuned_and_opted_out_models_serve_in_float(tiny_examples: list, tmp_path) -> None:
    for name, config in {
        "fine-tuned": replace(TINY, variables=1, epochs=1),
        "opted out": replace(TINY, int8=False),
    }.items():
        trained = train_model(tiny_examples, config)
        assert trained.int8_features is None, name
        classifier = Classifier.load(export_serving_model(trained, tmp_path / name))
        assert classifier.meta["int8"] is False, name


def test_calibration_sees_a_bounded_seeded_sample_and_its_mirrors() -> None:
    crops = [np.full((4, 4, 3), i % 256, dtype=np.uint8) for i in range(3 * CALIBRATION_PHOTOS)]
    sample = calibration_crops(crops, seed=1, mirrored=True)
    assert sample.shape == (2 * CALIBRATION_PHOTOS, 4, 4, 3)
    assert np.array_equal(sample, calibration_crops(crops, seed=1, mirrored=True))
    assert not np.array_equal(sample, calibration_crops(crops, seed=2, mirrored=True))
    assert calibration_crops(crops[:10], seed=1, mirrored=False).shape[0] == 10


@pytest.mark.parametrize("batches", range(1, 40))
def test_minmax_never_ends_on_an_empty_set_of_batches(batches: int) -> None:
    assert batches % _merge_every(batches) != 0
