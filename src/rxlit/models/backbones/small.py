"""Small networks for digits-sized inputs: the Madry et al. CNN and an MLP."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from rxlit.models.registry import register_backbone


@register_backbone("small_cnn", min_image_size=4)
def small_cnn(*, num_classes: int, in_chans: int, image_size: tuple[int, int], hidden: int = 1024,
              max_grid: int = 8) -> nn.Module:
    """The MNIST CNN of Madry et al. (ICLR 2018), for any input size and channel count.

    conv 32 5x5 pad 2 -> ReLU -> maxpool 2 -> conv 64 5x5 pad 2 -> ReLU -> maxpool 2
    -> fc ``hidden`` (1024) -> ReLU -> fc ``num_classes``. The flatten size follows the input up to
    ``max_grid``: 64 * (H // 4) * (W // 4), so 28x28 gives Madry's 3136, 32x32 gives 4096 and 8x8
    digits give 256; larger inputs are max-pooled to a ``max_grid`` x ``max_grid`` map before the
    classifier, so the network does not grow with the image (224x224 would otherwise need a
    205M-parameter layer). The extra pooling has no parameters, so state dicts are unchanged.
    """
    height, width = image_size
    grid = (min(height // 4, max_grid), min(width // 4, max_grid))
    last_pool: nn.Module = nn.MaxPool2d(2)
    if grid != (height // 4, width // 4):
        last_pool = nn.Sequential(nn.MaxPool2d(2), nn.AdaptiveMaxPool2d(grid))
    return nn.Sequential(
        nn.Conv2d(in_chans, 32, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, kernel_size=5, padding=2),
        nn.ReLU(),
        last_pool,
        nn.Flatten(),
        nn.Linear(64 * grid[0] * grid[1], hidden),
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
