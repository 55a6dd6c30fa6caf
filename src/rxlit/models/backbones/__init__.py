"""Importing this package registers every built-in backbone in ``rxlit.models.BACKBONES``."""

from rxlit.models.backbones import (
    googlenet,
    resnet,
    robustbench,
    small,
    timm_any,
    torchvision_any,
    transformers,
    vgg,
)

__all__ = ["googlenet", "resnet", "robustbench", "small", "timm_any", "torchvision_any", "transformers", "vgg"]
