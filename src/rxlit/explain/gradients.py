"""Gradient methods: Grad, Grad x Input and Integrated Gradients ("Grad", "GI" and "IG" of Tan & Tian 2023).

All paths of all examples are flattened into one ``(B * steps, ...)`` batch and differentiated
in memory-budgeted chunks (:func:`rxlit.explain.passes.gradient_rows`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from rxlit.explain.passes import gradient_rows
from rxlit.explain.registry import register_method

RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


@register_method("grad")
def grad(model: nn.Module, x: Tensor, target: Tensor, *, output: str = "logit",
         chunk_size: int | None = None) -> Tensor:
    """Vanilla (signed) gradient of the target score, Simonyan et al. 2014 ("Grad" in Tan & Tian 2023)."""
    return gradient_rows(model, x, target, output, chunk_size)


@register_method("grad_x_input", units="attribution")
def grad_x_input(model: nn.Module, x: Tensor, target: Tensor, *, output: str = "logit",
                 chunk_size: int | None = None) -> Tensor:
    """Gradient times input, ``x * d f / d x`` (Shrikumar et al. 2016; "GI" in Tan & Tian 2023)."""
    return x * gradient_rows(model, x, target, output, chunk_size)


def quadrature(rule: str, steps: int) -> tuple[list[float], list[float]]:
    """Points ``alpha_k`` in [0, 1] and weights ``w_k`` of an IG quadrature rule, in float64.

    * ``riemann_trapezoid`` (default): the trapezoid rule on ``steps`` points ``k/(n-1)``,
      ``k = 0..n-1`` (both ends of the path), weights ``1/(n-1)`` with the two end weights
      halved. The weights sum to 1, so IG of a linear f is exact, and the error is
      ``O(1/n^2)`` for smooth f against ``O(1/n)`` for the one-sided sums (Sotoudeh & Thakur
      2019; the IG authors' reference code switched from left Riemann to trapezoid for this).
    * ``riemann_left`` ``k/n`` (k = 0..n-1), ``riemann_right`` ``k/n`` (k = 1..n),
      ``riemann_middle`` ``(k + 1/2)/n``: weights ``1/n``. Points and weights are Captum's.
    * ``gausslegendre``: Gauss-Legendre nodes and weights rescaled from [-1, 1] to [0, 1]
      (Captum's default rule).

    Captum's ``riemann_trapezoid`` uses the same points but keeps the weights at ``1/n`` (ends
    halved), so they sum to ``1 - 1/n`` and its IG is ours times ``1 - 1/n`` (tested).
    """
    if rule == "gausslegendre":
        if steps < 1:
            raise ValueError("gausslegendre needs steps >= 1")
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (0.5 * (1 + nodes)).tolist(), (0.5 * weights).tolist()
    if rule not in RULES:
        raise ValueError(f"unknown integration rule {rule!r}; valid rules: {', '.join(RULES)}")
    if steps < 2:
        raise ValueError(f"{rule} needs steps >= 2 (as in Captum); got steps={steps}")
    if rule == "riemann_trapezoid":
        weights = [1.0 / (steps - 1)] * steps
        weights[0] /= 2
        weights[-1] /= 2
        return torch.linspace(0.0, 1.0, steps, dtype=torch.float64).tolist(), weights
    ends = {
        "riemann_left": (0.0, 1 - 1 / steps),
        "riemann_right": (1 / steps, 1.0),
        "riemann_middle": (1 / (2 * steps), 1 - 1 / (2 * steps)),
    }[rule]
    return torch.linspace(*ends, steps, dtype=torch.float64).tolist(), [1.0 / steps] * steps


def as_baseline(baseline: float | Tensor, x: Tensor) -> Tensor:
    """A scalar or a tensor broadcastable to ``x``, expanded to ``x``'s shape, dtype and device."""
    return torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)


@register_method("integrated_gradients", units="attribution")
def integrated_gradients(model: nn.Module, x: Tensor, target: Tensor, *, baseline: float | Tensor = 0.0,
                         steps: int = 10, rule: str = "riemann_trapezoid", output: str = "logit",
                         chunk_size: int | None = None) -> Tensor:
    """Integrated Gradients (Sundararajan et al., ICML 2017), as in Tan & Tian 2023 (zero
    baseline, 10 points): ``(x - x') * sum_k w_k grad f(x' + alpha_k (x - x'))`` with the
    quadrature ``rule`` of :func:`quadrature`: by default the trapezoid rule on ``steps`` points
    from the baseline to x, both included (Captum's rule names; Gauss-Legendre is an option).
    ``baseline`` is a scalar or a tensor broadcastable to x.
    """
    alphas, weights = quadrature(rule, steps)
    base = as_baseline(baseline, x)
    alpha = torch.tensor(alphas, dtype=x.dtype, device=x.device).view(1, -1, *([1] * (x.dim() - 1)))
    weight = torch.tensor(weights, dtype=x.dtype, device=x.device).view(1, -1, *([1] * (x.dim() - 1)))
    path = (base.unsqueeze(1) + alpha * (x - base).unsqueeze(1)).flatten(0, 1)
    rows = target.repeat_interleave(len(alphas))
    grads = gradient_rows(model, path, rows, output, chunk_size).view(x.shape[0], len(alphas), *x.shape[1:])
    return (x - base) * (weight * grads).sum(dim=1)
