"""VGG-16 with BatchNorm, CIFAR-style: the conv stack, global average pooling, a small head."""

from __future__ import annotations

from torch import nn

from rxlit.models.registry import register_backbone

# Configuration "D" of Simonyan & Zisserman (2015): channel widths, "M" = 2x2 max-pool.
VGG16_LAYERS = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _conv_stack(in_chans: int, image_size: tuple[int, int]) -> tuple[nn.Sequential, int]:
    """The VGG-16 conv stack; a max-pool is skipped once the feature map is down to 1 pixel.

    On 32x32 all five pools are kept (32 -> 1); on 8x8 the last two are skipped, so the
    same 13 conv layers work on digits.
    """
    layers: list[nn.Module] = []
    channels, side = in_chans, min(image_size)
    for item in VGG16_LAYERS:
        if item == "M":
            if side >= 2:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                side //= 2
            continue
        layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.BatchNorm2d(item), nn.ReLU()]
        channels = item
    return nn.Sequential(*layers), channels


class VGG(nn.Module):
    """``features`` -> adaptive average pool to 1x1 -> ``classifier``."""

    def __init__(self, features: nn.Sequential, channels: int, num_classes: int, hidden: int, dropout: float):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's VGG initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)))


@register_backbone("vgg16", min_image_size=8)
def vgg16(
    *,
    num_classes: int,
    in_chans: int,
    image_size: tuple[int, int],
    hidden: int = 512,
    dropout: float = 0.0,
) -> nn.Module:
    """VGG-16-BN (configuration D) with a ``hidden``-wide two-layer classifier.

    ``dropout`` defaults to 0 so that the model is deterministic in train mode too (explanations
    computed during training see the same function twice).
    """
    features, channels = _conv_stack(in_chans, image_size)
    return VGG(features, channels, num_classes, hidden, dropout)
