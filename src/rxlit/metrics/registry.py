"""The metric registry and its uniform calling convention.

Every registered metric is called as ``fn(model, x, target, method=..., generator=..., **options)``
and returns a tensor with one value per example. Attribution-based metrics (infidelity,
faithfulness, deletion/insertion) compute the attributions themselves with
:func:`rxlit.explain.explain` when none are given; model-robustness metrics ignore ``method``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from rxlit.registry import Registry, refuse_renamed

METRICS = Registry("metric")


def register_metric(name: str) -> Callable:
    return METRICS.register(name)


def compute_metric(name: str, model: nn.Module, x: Tensor, target: Tensor | int | None = None,
                   method: str | Callable = "grad", generator=None, **options) -> Tensor:
    """``METRICS[name](model, x, target, method=method, generator=generator, **options)`` -> Tensor[B]."""
    import rxlit.metrics  # noqa: F401  (registers every metric)

    refuse_renamed(name, options)
    return METRICS.get(name)(model, x, target, method=method, generator=generator, **options)
