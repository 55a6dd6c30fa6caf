"""Theorem 4.1 of Tan & Tian (ICML 2023): explanation Lipschitz constants bounded by the model's.

With ``L`` the Lipschitz constant of ``f``, ``H`` that of ``grad f`` (smoothness), inputs with
``||x|| <= beta``, ``d`` features::

    Grad                    H
    Grad x Input            beta * H + L
    Integrated Gradients    (beta * H + 2 L) / 2          (zero baseline)
    SmoothGrad              sqrt(2 / pi) * L / sigma      (Gaussian noise of std sigma)
    KernelSHAP              2 * sqrt(d) * L
    LIME                    2 * sqrt(d + 1) * L / (4 * lam + 1)   (constant kernel, ridge lam)

Arguments may be floats or per-example tensors (e.g. the local estimates of
:func:`rxlit.metrics.model_local_lipschitz` and :func:`rxlit.metrics.model_smoothness`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

Number = float | Tensor

BOUND_ARGUMENTS = {
    "grad": ("H",),
    "grad_x_input": ("H", "L", "beta"),
    "integrated_gradients": ("H", "L", "beta"),
    "smoothgrad": ("L", "sigma"),
    "kernel_shap": ("L", "d"),
    "lime": ("L", "d", "lam"),
}


def theorem41_bound(method: str, L: Number | None = None, H: Number | None = None, beta: Number | None = None,
                    sigma: float | None = None, d: int | None = None, lam: float | None = None) -> Number:
    """The Theorem 4.1 upper bound on the explanation Lipschitz constant of ``method``."""
    if method not in BOUND_ARGUMENTS:
        raise ValueError(f"no Theorem 4.1 bound for {method!r}; valid: {sorted(BOUND_ARGUMENTS)}")
    given = {"L": L, "H": H, "beta": beta, "sigma": sigma, "d": d, "lam": lam}
    missing = [name for name in BOUND_ARGUMENTS[method] if given[name] is None]
    if missing:
        raise ValueError(f"the {method} bound needs {missing}")
    if method == "grad":
        return H
    if method == "grad_x_input":
        return beta * H + L
    if method == "integrated_gradients":
        return (beta * H + 2 * L) / 2
    if method == "smoothgrad":
        return math.sqrt(2 / math.pi) * L / sigma
    if method == "kernel_shap":
        return 2 * math.sqrt(d) * L
    return 2 * math.sqrt(d + 1) * L / (4 * lam + 1)


def bound_ratio(empirical: Number, bound: Number) -> Number:
    """``empirical / bound``: at most 1 when the theorem holds (inf where the bound is 0)."""
    if isinstance(empirical, Tensor) or isinstance(bound, Tensor):
        return torch.as_tensor(empirical) / torch.as_tensor(bound)
    return empirical / bound if bound != 0 else math.inf
