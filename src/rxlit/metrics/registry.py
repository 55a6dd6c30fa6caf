"""The metric registry, its calling convention and what each metric declares.

Every registered metric is called as ``fn(model, x, target, method=..., generator=..., **options)``
and returns a tensor with one value per example. Attribution-based metrics (infidelity,
faithfulness, deletion/insertion) compute the attributions themselves with
:func:`rxlit.explain.explain` when none are given; model metrics ignore ``method``.

A metric declares, where it is registered, what the evaluation, the loggers and the tables need:
its kind (``"explanation"``: computed per method, logged ``xai/<metric>/<method>``; ``"model"``:
computed once, logged ``model/<metric>``), its direction (``higher_is_better``, as torchmetrics), whether
its per-example values are 0/1 (``proportion``: Wilson intervals) and its options (read from its
keyword arguments, or given explicitly for a metric that takes ``**kwargs``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from rxlit.registry import Registry, refuse_renamed

KINDS = ("explanation", "model")

# Arguments the evaluation fills in itself: never a metric's configurable option.
RESERVED = {"method", "generator", "seed", "index", "epoch", "attributions", "method_options", "chunk_size", "_"}

METRICS = Registry("metric", skip=3, reserved=RESERVED)


@dataclass(frozen=True)
class MetricInfo:
    """What a metric declared when it was registered (see the module docstring)."""

    kind: str
    higher_is_better: bool
    proportion: bool = False


def register_metric(name: str, *, higher_is_better: bool, kind: str = "explanation", proportion: bool = False,
                    options: dict | None = None) -> Callable:
    """Register ``fn(model, x, target, method=None, generator=None, **options) -> Tensor[B]`` as ``name``."""
    if kind not in KINDS:
        raise ValueError(f"unknown metric kind {kind!r}; valid: {', '.join(KINDS)}")
    return METRICS.register(name, MetricInfo(kind, bool(higher_is_better), proportion), options)


def metric_info(name: str) -> MetricInfo:
    import rxlit.metrics  # noqa: F401  (registers every metric)

    return METRICS.info(name)


def is_model_metric(name: str) -> bool:
    """A metric of the model itself: the method is ignored, so it is computed once per evaluation."""
    return metric_info(name).kind == "model"


def list_metrics() -> dict[str, dict]:
    """Every registered metric with what it declared: ``kind``, ``higher_is_better``, ``proportion``
    and ``options`` (name -> default)."""
    import rxlit.metrics  # noqa: F401  (registers every metric)

    return {name: {**metric_info(name).__dict__, "options": METRICS.options(name)} for name in METRICS.names()}


def compute_metric(name: str, model: nn.Module, x: Tensor, target: Tensor | int | None = None,
                   method: str | Callable = "grad", generator=None, **options) -> Tensor:
    """``METRICS[name](model, x, target, method=method, generator=generator, **options)`` -> Tensor[B]."""
    import rxlit.metrics  # noqa: F401  (registers every metric)

    refuse_renamed(name, options)
    return METRICS.get(name)(model, x, target, method=method, generator=generator, **options)
