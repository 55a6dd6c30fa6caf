"""torchvision GoogLeNet (Inception v1) with a small-input stem and ReLU modules.

torchvision's ``BasicConv2d`` applies ``F.relu(x, inplace=True)`` in its forward, invisible to
module hooks and harmful to double backprop; ``ConvBNReLU`` below is the same conv + BN with an
``nn.ReLU`` module, passed to torchvision through its ``blocks`` argument.
"""

from __future__ import annotations

from functools import partial

from torch import Tensor, nn
from torchvision.models.googlenet import GoogLeNet, Inception, InceptionAux

from rxlit.models.registry import register_backbone

# Inputs up to this side get the small-input stem.
SMALL_INPUT_MAX = 64


class ConvBNReLU(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU module; torchvision's BasicConv2d layout."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


def _init_like_torchvision(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@register_backbone("googlenet", min_image_size=8)
def googlenet(
    *, num_classes: int, in_chans: int, image_size: tuple[int, int], dropout: float = 0.2
) -> nn.Module:
    """GoogLeNet (Szegedy et al. 2015), ``aux_logits=False``, ``init_weights=True``.

    For sides <= 64 the stem is made CIFAR-style: the first conv is 3x3 stride 1 and the two
    early max-pools are removed, so 32x32 inputs reach the inception-3 blocks at 32x32 and 8x8
    digits end at 2x2 before the global pool.
    """
    blocks = [ConvBNReLU, partial(Inception, conv_block=ConvBNReLU), partial(InceptionAux, conv_block=ConvBNReLU)]
    model = GoogLeNet(
        num_classes=num_classes,
        aux_logits=False,
        transform_input=False,  # rxlit normalises in its own first layer
        init_weights=True,
        blocks=blocks,
        dropout=dropout,
    )
    if max(image_size) <= SMALL_INPUT_MAX:
        model.conv1 = ConvBNReLU(in_chans, 64, kernel_size=3, stride=1, padding=1)
        model.maxpool1 = nn.Identity()
        model.maxpool2 = nn.Identity()
    else:
        model.conv1 = ConvBNReLU(in_chans, 64, kernel_size=7, stride=2, padding=3)
    _init_like_torchvision(model.conv1)
    return model
