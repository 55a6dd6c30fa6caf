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
from rxlit.explain.core import (
    METHODS,
    chunk_rows,
    explain,
    input_gradient,
    list_methods,
    method_options,
    register_method,
)
from rxlit.explain.features import feature_groups, grid_mask, quickshift_mask

__all__ = [
    "METHODS",
    "captum_method",
    "chunk_rows",
    "explain",
    "feature_groups",
    "grid_mask",
    "input_gradient",
    "list_methods",
    "method_options",
    "quickshift_mask",
    "register_method",
]
