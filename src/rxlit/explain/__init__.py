"""Explanation methods: batched, chunked, deterministic given a generator; no Lightning needed.

Importing this package registers every built-in method (see :func:`list_methods`).
"""

from rxlit.explain import (  # noqa: F401 (each module registers its methods)
    clime,
    gradients,
    guided,
    lime,
    occlusion,
    optimal,
    shapley,
    smoothing,
)
from rxlit.explain.captum_adapter import captum_method
from rxlit.explain.core import explain
from rxlit.explain.features import feature_groups, grid_mask, quickshift_mask
from rxlit.explain.passes import chunk_rows, input_gradient
from rxlit.explain.registry import (
    METHODS,
    UNITS,
    MethodInfo,
    declare,
    list_methods,
    method_info,
    method_options,
    register_method,
)

__all__ = [
    "METHODS",
    "UNITS",
    "MethodInfo",
    "captum_method",
    "chunk_rows",
    "declare",
    "explain",
    "feature_groups",
    "grid_mask",
    "input_gradient",
    "list_methods",
    "method_info",
    "method_options",
    "quickshift_mask",
    "register_method",
]
