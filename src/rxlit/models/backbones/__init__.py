"""Importing this package registers every built-in backbone in ``rxlit.models.BACKBONES``."""

from rxlit.models.backbones import googlenet, resnet, small, timm_any, transformers, vgg

__all__ = ["googlenet", "resnet", "small", "timm_any", "transformers", "vgg"]
