"""Models: registered backbones behind a per-data-set normalisation layer.

Every model maps [0, 1] images to logits; ``build_model`` is the single entry point and
``BACKBONES`` the registry (add one with ``rxlit.models.registry.register_backbone``);
``build_with_weights`` builds one around weights from another project (``read_weights``).
"""

from rxlit.activations import activation_kinds, disable_inplace, is_activation, replace_activations
from rxlit.models.factory import (
    BACKBONES,
    Normalization,
    backbone_options,
    build_model,
    build_with_weights,
    load_backbone_weights,
    resolve_normalization,
)
from rxlit.models.normalize import Normalize, NormalizedModel
from rxlit.models.registry import min_image_size, register_backbone
from rxlit.models.weights import FORMATS, ForeignWeights, WeightsError, read_weights

__all__ = [
    "BACKBONES",
    "FORMATS",
    "ForeignWeights",
    "Normalization",
    "Normalize",
    "NormalizedModel",
    "WeightsError",
    "activation_kinds",
    "backbone_options",
    "build_model",
    "build_with_weights",
    "disable_inplace",
    "is_activation",
    "load_backbone_weights",
    "min_image_size",
    "read_weights",
    "register_backbone",
    "replace_activations",
    "resolve_normalization",
]
