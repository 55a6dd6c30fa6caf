"""Small networks for digits-sized inputs: the Madry et al. CNN and an MLP."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from rxlit.models.registry import register_backbone


@register_backbone("small_cnn", min_image_size=4)
def small_cnn(*, num_classes: int, in_chans: int, image_size: tuple[int, int], hidden: int = 1024) -> nn.Module:
    """The MNIST CNN of Madry et al. (ICLR 2018), for any input size and channel count.

    conv 32 5x5 pad 2 -> ReLU -> maxpool 2 -> conv 64 5x5 pad 2 -> ReLU -> maxpool 2
    -> fc ``hidden`` (1024) -> ReLU -> fc ``num_classes``. The flatten size follows the input:
    64 * (H // 4) * (W // 4), so 28x28 gives Madry's 3136 and 8x8 digits give 256.
    """
    height, width = image_size
    flat = 64 * (height // 4) * (width // 4)
    return nn.Sequential(
        nn.Conv2d(in_chans, 32, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


@register_backbone("mlp", min_image_size=1)
def mlp(
    *,
    num_classes: int,
    in_chans: int,
    image_size: tuple[int, int],
    hidden: Sequence[int] = (256, 256),
) -> nn.Module:
    """flatten -> [Linear -> ReLU] for each width in ``hidden`` -> Linear to ``num_classes``."""
    height, width = image_size
    layers: list[nn.Module] = [nn.Flatten()]
    features = in_chans * height * width
    for width_out in hidden:
        layers += [nn.Linear(features, int(width_out)), nn.ReLU()]
        features = int(width_out)
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)
