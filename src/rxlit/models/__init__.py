"""Models: registered backbones behind a per-data-set normalisation layer.

Every model maps [0, 1] images to logits; ``build_model`` is the single entry point and
``BACKBONES`` the registry (add one with ``rxlit.models.registry.register_backbone``).
"""

from rxlit.models.activations import activation_kinds, disable_inplace, is_activation, replace_activations
from rxlit.models.factory import BACKBONES, backbone_options, build_model, load_backbone_weights
from rxlit.models.normalize import Normalize, NormalizedModel
from rxlit.models.registry import min_image_size, register_backbone

__all__ = [
    "BACKBONES",
    "Normalize",
    "NormalizedModel",
    "activation_kinds",
    "backbone_options",
    "build_model",
    "disable_inplace",
    "is_activation",
    "load_backbone_weights",
    "min_image_size",
    "register_backbone",
    "replace_activations",
]
