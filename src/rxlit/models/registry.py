"""The backbone registry: one decorated function per architecture.

A backbone function has the signature
``fn(*, num_classes, in_chans, image_size, **options) -> nn.Module`` where ``image_size`` is an
``(H, W)`` pair and ``options`` are the keys of its ``configs/model/<name>.yaml``. It maps
*normalised* images to logits; ``build_model`` puts the normalisation in front.
"""

from __future__ import annotations

from collections.abc import Callable

from rxlit.registry import Registry

# A backbone is fn(num_classes, in_chans, image_size, **options): the data decide the first three.
DATA_ARGS = ("num_classes", "in_chans", "image_size")
BACKBONES = Registry("model", reserved=DATA_ARGS)

# An int, or a function of the backbone's options (e.g. an explicit patch size) returning one.
MinSize = int | Callable[..., int]


def register_backbone(name: str, *, min_image_size: MinSize):
    """Register a backbone under ``name`` with the smallest image side it supports."""

    return BACKBONES.register(name, {"min_image_size": min_image_size})


def min_image_size(name: str, **options) -> int:
    """Smallest supported image side (pixels) for backbone ``name`` with these options."""
    minimum = BACKBONES.info(name)["min_image_size"]
    return int(minimum(**options)) if callable(minimum) else int(minimum)
