"""Theorem 4.1 of Tan & Tian (ICML 2023): explanation Lipschitz constants bounded by the model's.

With ``L`` the Lipschitz constant of ``f``, ``H`` that of ``grad f`` (smoothness), inputs with
``||x|| <= beta``, ``d`` features::

    Grad                    H
    Grad x Input            beta * H + L
    Integrated Gradients    (beta * H + 2 L) / 2          (zero baseline)
    SmoothGrad              sqrt(2 / pi) * L / sigma      (Gaussian noise of std sigma)
    KernelSHAP              2 * sqrt(d) * L
    LIME                    2 * sqrt(d + 1) * L / (4 * lam + 1)   (constant kernel, ridge lam)

:func:`theorem41_bound` is the formula. :func:`explanation_bound` is the one place that maps a
method *as rxlit runs it* (name and options) onto the formula's constants; the evaluation
callback, ``scripts/eval.py`` and the studies all call :func:`bound_ratios`, which uses it:

* LIME: the theorem's ``lam`` weighs the ridge penalty against the *mean* squared error over the
  samples; rxlit's LIME penalises the *sum* (``ridge_alpha ||b||^2`` beside ``sum_j (f_j - c - z_j.b)^2``),
  so ``lam = ridge_alpha / n_samples``. The theorem assumes a constant kernel: only ``kernel="constant"``
  gets a bound (with the exponential kernel the weights move with x).
* LIME and KernelSHAP: ``d`` is the number of features present in the image; the theorem bounds
  the d-dimensional explanation, and broadcasting a feature's weight to its ``m`` input elements
  multiplies a difference's norm by at most ``sqrt(m)``: the bound is scaled by ``sqrt(max m)``.
* Integrated Gradients: zero baseline only. SmoothGrad: ``smoothgrad`` and ``smoothed`` with
  ``base="grad"`` and a Gaussian kernel.
* ``beta`` is ``||x||_2`` of each example; ``L``, ``H`` are per-example (local estimates) or numbers.
* Grad's bound is ``H`` itself: with ``H`` measured as the local Lipschitz estimate of ``grad f``
  (``model_smoothness``, the same estimator on the same draws) the ratio is 1 by construction, so
  Grad is reported as that identity (:data:`IDENTITY`) and never counted as a check of the theorem.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rxlit.explain.features import feature_groups
from rxlit.explain.registry import check_options, get_method, method_options

Number = float | Tensor

BOUND_ARGUMENTS = {
    "grad": ("H",),
    "grad_x_input": ("H", "L", "beta"),
    "integrated_gradients": ("H", "L", "beta"),
    "smoothgrad": ("L", "sigma"),
    "kernel_shap": ("L", "d"),
    "lime": ("L", "d", "lam"),
}

# Methods whose bound is the quantity the evaluation measures for H: reported, never a check.
IDENTITY = ("grad",)


def theorem41_bound(method: str, L: Number | None = None, H: Number | None = None, beta: Number | None = None,
                    sigma: float | None = None, d: Number | None = None, lam: float | None = None) -> Number:
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
        return 2 * _sqrt(d) * L
    return 2 * _sqrt(d + 1) * L / (4 * lam + 1)


def _sqrt(v: Number) -> Number:
    return v.sqrt() if isinstance(v, Tensor) else math.sqrt(v)


def resolved_options(method: str, options: dict | None) -> dict:
    """The method's defaults overridden by ``options`` (what the estimator actually runs with); options
    the method does not take (or that were renamed) are refused."""
    check_options(get_method(method), options or {})
    return {**method_options(get_method(method)), **(options or {})}


def feature_counts(x: Tensor, options: dict) -> tuple[Tensor, Tensor]:
    """Per example: ``d`` (features present) and the largest feature's number of input elements."""
    groups = feature_groups(x, options.get("features", "grid"), options.get("n_features", 64),
                            options.get("feature_options"))
    sizes = torch.zeros(x.shape[0], groups.k, device=x.device, dtype=torch.float64).scatter_add_(
        1, groups.index, torch.ones_like(groups.index, dtype=torch.float64))
    return groups.active.sum(1).to(x.dtype), sizes.amax(1).to(x.dtype)


def theorem41_arguments(method: str, options: dict | None, x: Tensor) -> tuple[str, dict, Number] | None:
    """``(formula, arguments, pixel-space factor)`` for the estimator ``method`` runs with
    ``options`` on ``x``, or None when Theorem 4.1 gives it no bound (see the module doc)."""
    if not isinstance(method, str):
        return None
    opts = resolved_options(method, options)
    if method == "smoothed":
        if opts.get("base") != "grad" or opts.get("kernel") != "gaussian" or opts.get("base_options"):
            return None
        return "smoothgrad", {"sigma": float(opts["sigma"])}, 1.0
    if method == "smoothgrad":
        return "smoothgrad", {"sigma": float(opts["sigma"])}, 1.0
    if method in ("grad", "grad_x_input"):
        return method, {}, 1.0
    if method == "integrated_gradients":
        baseline = torch.as_tensor(opts.get("baseline", 0.0))
        return (method, {}, 1.0) if bool((baseline == 0).all()) else None
    if method in ("lime", "kernel_shap"):
        if method == "lime" and opts.get("kernel") != "constant":
            return None
        d, largest = feature_counts(x, opts)
        args = {"d": d}
        if method == "lime":
            args["lam"] = float(opts["ridge_alpha"]) / int(opts["n_samples"])
        return method, args, largest.sqrt()
    return None


def explanation_bound(method: str, options: dict | None, x: Tensor, L: Number, H: Number | None = None
                      ) -> Tensor | None:
    """Theorem 4.1's bound on the pixel-space explanation Lipschitz constant of ``method`` run with
    ``options``, per example of ``x`` (``beta = ||x||_2``): a tensor (B,), None where the theorem
    gives none."""
    found = theorem41_arguments(method, options, x)
    if found is None:
        return None
    formula, args, factor = found
    beta = x.flatten(1).norm(dim=1)
    bound = theorem41_bound(formula, L=L, H=H, beta=beta, **args) * factor
    return torch.as_tensor(bound, dtype=x.dtype, device=x.device).expand(x.shape[0])


def bound_ratios(lipschitz: dict[str, Tensor], methods: dict[str, dict], x: Tensor, L: Number, H: Number
                 ) -> dict[str, Tensor]:
    """``{method: empirical / bound}`` per example, for every method of ``lipschitz`` (its local
    Lipschitz values) that has a Theorem 4.1 bound, except the :data:`IDENTITY` (Grad)."""
    out = {}
    for method, values in lipschitz.items():
        if method in IDENTITY:
            continue
        bound = explanation_bound(method, methods.get(method), x, L, H)
        if bound is not None:
            out[method] = bound_ratio(values, bound)
    return out


def bound_ratio(empirical: Number, bound: Number) -> Number:
    """``empirical / bound``: at most 1 when the theorem holds (inf where the bound is 0)."""
    if isinstance(empirical, Tensor) or isinstance(bound, Tensor):
        return torch.as_tensor(empirical) / torch.as_tensor(bound)
    return empirical / bound if bound != 0 else math.inf
