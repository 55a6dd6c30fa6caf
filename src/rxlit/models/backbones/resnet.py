"""torchvision ResNet-18/50 with a small-input stem and one ReLU module per use.

torchvision's blocks call the same ``self.relu`` module two or three times per forward; hook-based
explanations (DeepLift, guided backprop) need each activation to be called once, so the blocks
below subclass torchvision's with one ReLU module per use. Weights layout (``conv1``, ``bn1``,
``layer1`` ...) is unchanged, so torchvision state dicts still load.
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.models import resnet as tv

from rxlit.models.registry import register_backbone

# Inputs up to this side get the CIFAR-style stem (3x3 stride-1 conv, no max-pool).
SMALL_INPUT_MAX = 64


class BasicBlock(tv.BasicBlock):
    """torchvision's BasicBlock with two separate, non-inplace ReLU modules."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.relu = nn.ReLU()
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)


class Bottleneck(tv.Bottleneck):
    """torchvision's Bottleneck with three separate, non-inplace ReLU modules."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.relu = nn.ReLU()
        self.relu2 = nn.ReLU()
        self.relu3 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + identity)


def _set_stem(model: tv.ResNet, in_chans: int, image_size: tuple[int, int]) -> None:
    """CIFAR-style stem for small inputs, the standard 7x7/2 + max-pool stem otherwise."""
    if max(image_size) <= SMALL_INPUT_MAX:
        model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    else:
        model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
    # Same initialisation torchvision gives every conv.
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")


def _resnet(block, layers, num_classes, in_chans, image_size, zero_init_residual) -> nn.Module:
    model = tv.ResNet(block, layers, num_classes=num_classes, zero_init_residual=zero_init_residual)
    # zero_init_residual works as in torchvision: our blocks subclass its BasicBlock/Bottleneck.
    _set_stem(model, in_chans, image_size)
    return model


@register_backbone("resnet18", min_image_size=8)
def resnet18(
    *, num_classes: int, in_chans: int, image_size: tuple[int, int], zero_init_residual: bool = False
) -> nn.Module:
    """ResNet-18 (He et al. 2016); CIFAR-style stem when the image side is <= 64."""
    return _resnet(BasicBlock, [2, 2, 2, 2], num_classes, in_chans, image_size, zero_init_residual)


@register_backbone("resnet50", min_image_size=8)
def resnet50(
    *, num_classes: int, in_chans: int, image_size: tuple[int, int], zero_init_residual: bool = False
) -> nn.Module:
    """ResNet-50 (He et al. 2016); CIFAR-style stem when the image side is <= 64."""
    return _resnet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, image_size, zero_init_residual)
