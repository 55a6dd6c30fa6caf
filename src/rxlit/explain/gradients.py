"""Gradient methods: Grad x Input and Integrated Gradients (the "GI" and "IG" of Tan & Tian 2023).

All paths of all examples are flattened into one ``(B * steps, ...)`` batch and differentiated
in memory-budgeted chunks (:func:`rxlit.explain.core.gradient_rows`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from rxlit.explain.core import gradient_rows, register_method

RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


@register_method("grad_x_input")
def grad_x_input(model: nn.Module, x: Tensor, target: Tensor, *, output: str = "logit",
                 chunk_size: int | None = None) -> Tensor:
    """Gradient times input, ``x * d f / d x`` (Shrikumar et al. 2016; "GI" in Tan & Tian 2023)."""
    return x * gradient_rows(model, x, target, output, chunk_size)


def quadrature(rule: str, steps: int) -> tuple[list[float], list[float]]:
    """Points ``alpha_k`` in [0, 1] and weights ``w_k`` of an IG quadrature rule.

    The names and point placement are Captum's (``captum.attr._utils.approximation_methods``):
    left ``k/n`` (k = 0..n-1), right ``k/n`` (k = 1..n), middle ``(k + 1/2)/n``, trapezoid
    ``k/(n-1)`` (k = 0..n-1, end weights halved), all with weight ``1/n``; Gauss-Legendre nodes
    and weights rescaled from [-1, 1] to [0, 1]. Computed in float64.

    Captum's trapezoid keeps the step ``1/n`` although its points are ``1/(n-1)`` apart, so its
    weights sum to ``1 - 1/n`` (IG of a linear f comes out scaled by ``1 - 1/n``); we keep that for
    parity. The default, Gauss-Legendre (also Captum's default), is exact for linear f.
    """
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (0.5 * (1 + nodes)).tolist(), (0.5 * weights).tolist()
    if rule not in RULES:
        raise ValueError(f"unknown integration rule {rule!r}; valid rules: {', '.join(RULES)}")
    if steps < 2:
        raise ValueError("Riemann rules need steps >= 2 (as in Captum)")
    weights = [1.0 / steps] * steps
    ends = {
        "riemann_left": (0.0, 1 - 1 / steps),
        "riemann_right": (1 / steps, 1.0),
        "riemann_middle": (1 / (2 * steps), 1 - 1 / (2 * steps)),
        "riemann_trapezoid": (0.0, 1.0),
    }[rule]
    if rule == "riemann_trapezoid":
        weights[0] /= 2
        weights[-1] /= 2
    return torch.linspace(*ends, steps, dtype=torch.float64).tolist(), weights


def as_baseline(baseline: float | Tensor, x: Tensor) -> Tensor:
    """A scalar or a tensor broadcastable to ``x``, expanded to ``x``'s shape, dtype and device."""
    return torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)


@register_method("integrated_gradients")
def integrated_gradients(model: nn.Module, x: Tensor, target: Tensor, *, baseline: float | Tensor = 0.0,
                         steps: int = 10, rule: str = "gausslegendre", output: str = "logit",
                         chunk_size: int | None = None) -> Tensor:
    """Integrated Gradients (Sundararajan et al., ICML 2017), as in Tan & Tian 2023 (zero
    baseline, 10 points): ``(x - x') * sum_k w_k grad f(x' + alpha_k (x - x'))`` with the
    quadrature of :func:`quadrature` (Captum's rule names, points and weights; Gauss-Legendre by
    default, as Captum). ``baseline`` is a scalar or a tensor broadcastable to x.
    """
    alphas, weights = quadrature(rule, steps)
    base = as_baseline(baseline, x)
    alpha = torch.tensor(alphas, dtype=x.dtype, device=x.device).view(1, -1, *([1] * (x.dim() - 1)))
    weight = torch.tensor(weights, dtype=x.dtype, device=x.device).view(1, -1, *([1] * (x.dim() - 1)))
    path = (base.unsqueeze(1) + alpha * (x - base).unsqueeze(1)).flatten(0, 1)
    rows = target.repeat_interleave(len(alphas))
    grads = gradient_rows(model, path, rows, output, chunk_size).view(x.shape[0], len(alphas), *x.shape[1:])
    return (x - base) * (weight * grads).sum(dim=1)
