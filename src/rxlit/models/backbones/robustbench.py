"""CIFAR-stem architectures with the parameter names of RobustBench and the robustness library.

RobustBench's model zoo (Croce et al., NeurIPS 2021 Datasets and Benchmarks) and MadryLab's
``robustness`` library (the models Tan & Tian, ICML 2023, evaluate) publish checkpoints of
three families; the modules here carry exactly their parameter names and shapes, so those state
dicts load unmodified:

* Wide ResNet (Zagoruyko & Komodakis 2016) as in RobustBench ``wide_resnet.py``: ``conv1``,
  ``block{1,2,3}.layer.{i}.{bn1,conv1,bn2,conv2,convShortcut}``, ``bn1``, ``fc``;
  registered as ``wrn28_10`` and ``wrn34_10``.
* Pre-activation ResNet-18 (He et al. 2016) as in RobustBench ``resnet.py``: ``conv1``,
  ``layer{1..4}.{i}.{bn1,conv1,bn2,conv2,shortcut.0}``, ``linear`` (``bn`` with
  ``bn_before_fc``); registered as ``preact_resnet18``.
* The CIFAR ResNet of RobustBench ``resnet.py`` and ``robustness/cifar_models/resnet.py``:
  ``conv1``, ``bn1``, ``layer{1..4}.{i}.{conv1,bn1,conv2,bn2,shortcut.{0,1}}``, ``linear``;
  registered as ``cifar_resnet18`` and ``cifar_resnet50``.

Differences that do not touch the weights: every activation is its own non-inplace ReLU module
called once (hook-based explanations and double backprop need that), the first conv takes
``in_chans`` channels, and the final pooling is a global average (on 32x32 inputs the published
``avg_pool2d(out, 8)`` / ``avg_pool2d(out, 4)`` are exactly that), so other image sizes work too.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rxlit.models.registry import register_backbone


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, padding=0, bias=False)


def global_pool(x: Tensor) -> Tensor:
    return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


# ------------------------------------------------------------------------------------ Wide ResNet
class PreActConvs(nn.Module):
    """The layers of a pre-activation block, BN-ReLU-conv3x3-BN-ReLU-conv3x3, under the names
    both published layouts give them; the blocks below add their shortcut and forward."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)


class WideBasicBlock(PreActConvs):
    """BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 with an identity or 1x1 ``convShortcut``.

    When the width changes, the shortcut takes the pre-activated input (as in the published code).
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__(in_planes, out_planes, stride)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = None if self.equal_in_out else conv1x1(in_planes, out_planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        act = self.relu1(self.bn1(x))
        out = self.conv2(self.dropout(self.relu2(self.bn2(self.conv1(act)))))
        shortcut = x if self.equal_in_out else self.convShortcut(act)
        return shortcut + out


class NetworkBlock(nn.Module):
    """``layer``: ``n`` wide blocks, the first one changing width and stride."""

    def __init__(self, n: int, in_planes: int, out_planes: int, stride: int, drop_rate: float):
        super().__init__()
        self.layer = nn.Sequential(*[
            WideBasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, drop_rate)
            for i in range(n)
        ])

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-``depth``-``widen_factor`` (Zagoruyko & Komodakis 2016), RobustBench's layout.

    ``sub_block1`` adds the unused ``sub_block1`` module some RobustBench checkpoints carry (TRADES
    code); it has parameters but no part in the forward pass. ``bias_last`` is the ``fc`` bias.
    """

    def __init__(self, depth: int = 28, widen_factor: int = 10, num_classes: int = 10, in_chans: int = 3,
                 drop_rate: float = 0.0, sub_block1: bool = False, bias_last: bool = True):
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"Wide ResNet depth must be 6n + 4 (e.g. 28, 34), got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = conv3x3(in_chans, widths[0])
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1, drop_rate)
        if sub_block1:
            self.sub_block1 = NetworkBlock(n, widths[0], widths[1], 1, drop_rate)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2, drop_rate)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU()
        self.fc = nn.Linear(widths[3], num_classes, bias=bias_last)
        self._init_weights()

    def _init_weights(self) -> None:
        # The published initialisation: He normal with fan-out, BN (1, 0), zero fc bias.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(global_pool(self.relu(self.bn1(out))))


def _wrn(depth: int, num_classes: int, in_chans: int, drop_rate: float, sub_block1: bool,
         bias_last: bool) -> WideResNet:
    return WideResNet(depth, 10, num_classes, in_chans, drop_rate, sub_block1, bias_last)


@register_backbone("wrn28_10", min_image_size=4)
def wrn28_10(*, num_classes: int, in_chans: int, image_size: tuple[int, int], drop_rate: float = 0.0,
             sub_block1: bool = False, bias_last: bool = True) -> nn.Module:
    """WideResNet-28-10 (36.5M parameters), RobustBench's parameter names; CIFAR stem."""
    return _wrn(28, num_classes, in_chans, drop_rate, sub_block1, bias_last)


@register_backbone("wrn34_10", min_image_size=4)
def wrn34_10(*, num_classes: int, in_chans: int, image_size: tuple[int, int], drop_rate: float = 0.0,
             sub_block1: bool = False, bias_last: bool = True) -> nn.Module:
    """WideResNet-34-10 (46.2M parameters, TRADES/MART models), RobustBench's names; CIFAR stem."""
    return _wrn(34, num_classes, in_chans, drop_rate, sub_block1, bias_last)


# ------------------------------------------------------------------------ pre-activation ResNet
class PreActBlock(PreActConvs):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3; a 1x1 ``shortcut.0`` when width or stride change.

    The shortcut takes the raw input (RobustBench's ``PreActBlock``) or, with ``out_shortcut``,
    the pre-activated one (its ``out_shortcut=True`` variant).
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, out_shortcut: bool = False):
        super().__init__(in_planes, planes, stride)
        self.out_shortcut = out_shortcut
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(conv1x1(in_planes, planes, stride))

    def forward(self, x: Tensor) -> Tensor:
        act = self.relu1(self.bn1(x))
        if hasattr(self, "shortcut"):
            shortcut = self.shortcut(act if self.out_shortcut else x)
        else:
            shortcut = x
        return self.conv2(self.relu2(self.bn2(self.conv1(act)))) + shortcut


class PreActResNet(nn.Module):
    """Pre-activation ResNet (He et al., ECCV 2016), RobustBench's layout; ``bn_before_fc`` adds
    the final ``bn`` + ReLU some checkpoints (e.g. Rice et al. 2020) have."""

    def __init__(self, num_blocks=(2, 2, 2, 2), num_classes: int = 10, in_chans: int = 3,
                 bn_before_fc: bool = False, out_shortcut: bool = False):
        super().__init__()
        self.conv1 = conv3x3(in_chans, 64)
        planes_in = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), num_blocks)):
            blocks = []
            for j in range(n):
                blocks.append(PreActBlock(planes_in, planes, (1 if i == 0 else 2) if j == 0 else 1, out_shortcut))
                planes_in = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.bn_before_fc = bn_before_fc
        if bn_before_fc:
            self.bn = nn.BatchNorm2d(512)
            self.relu = nn.ReLU()
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        if self.bn_before_fc:
            out = self.relu(self.bn(out))
        return self.linear(global_pool(out))


@register_backbone("preact_resnet18", min_image_size=4)
def preact_resnet18(*, num_classes: int, in_chans: int, image_size: tuple[int, int], bn_before_fc: bool = False,
                    out_shortcut: bool = False) -> nn.Module:
    """PreActResNet-18 (11.2M parameters), RobustBench's parameter names; CIFAR stem."""
    return PreActResNet((2, 2, 2, 2), num_classes, in_chans, bn_before_fc, out_shortcut)


# ------------------------------------------------------------------------------- CIFAR ResNet
class CifarBasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus a ``shortcut`` (empty, or 1x1 conv + BN), then ReLU."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _projection(in_planes, planes * self.expansion, stride)
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class CifarBottleneck(nn.Module):
    """1x1-3x3-1x1 bottleneck (expansion 4) with BN and a ``shortcut``, then ReLU."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.shortcut = _projection(in_planes, planes * self.expansion, stride)
        self.relu3 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(self.relu2(self.bn2(self.conv2(out)))))
        return self.relu3(out + self.shortcut(x))


def _projection(in_planes: int, out_planes: int, stride: int) -> nn.Sequential:
    if stride == 1 and in_planes == out_planes:
        return nn.Sequential()
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))


class CifarResNet(nn.Module):
    """ResNet with a 3x3 stride-1 stem and no max-pool (the CIFAR ResNet of RobustBench and the
    robustness library)."""

    def __init__(self, block, num_blocks, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        self.conv1 = conv3x3(in_chans, 64)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        planes_in = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), num_blocks)):
            blocks = []
            for j in range(n):
                blocks.append(block(planes_in, planes, (1 if i == 0 else 2) if j == 0 else 1))
                planes_in = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(512 * block.expansion, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(global_pool(out))


@register_backbone("cifar_resnet18", min_image_size=4)
def cifar_resnet18(*, num_classes: int, in_chans: int, image_size: tuple[int, int]) -> nn.Module:
    """ResNet-18 with RobustBench / robustness-library names (``shortcut``, ``linear``); CIFAR stem."""
    return CifarResNet(CifarBasicBlock, (2, 2, 2, 2), num_classes, in_chans)


@register_backbone("cifar_resnet50", min_image_size=4)
def cifar_resnet50(*, num_classes: int, in_chans: int, image_size: tuple[int, int]) -> nn.Module:
    """ResNet-50 with RobustBench / robustness-library names (``shortcut``, ``linear``); CIFAR stem."""
    return CifarResNet(CifarBottleneck, (3, 4, 6, 3), num_classes, in_chans)
