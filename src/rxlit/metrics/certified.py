"""Certified bounds: a global Lipschitz constant of the model, and explanation-Lipschitz bounds
that follow from it.

Tan & Tian's Theorem 4.1 is checked in the papers with *local estimates* of the model's ``L``
and ``H`` (lower estimates of the constants the theorem needs). Here the constants are upper
bounds instead, so every bound holds for every pair of inputs:

* :func:`global_lipschitz`: ``L`` of every logit in pixel space (L2), the product of per-layer
  operator norms along a chain of layers (normalisation ``1 / min std``; linear layers by their
  exact spectral norm, the last one row by row, i.e. per class; convolutions by power iteration on
  the convolution operator itself -- ``conv2d`` and its adjoint ``conv_transpose2d`` at the layer's
  input size, stride and padding; ReLU 1; max pooling ``sqrt`` of the windows covering an input).
  Power iteration converges to the spectral norm from below; it is run until the estimate moves
  by less than ``tol`` (relative) and matches the exact norm of the dense operator on digits
  shapes (tested). ``H`` has no finite global bound for ReLU networks, so Grad, Grad x Input and
  IG get no certified bound.
* :func:`certified_bound`: explanation-Lipschitz bounds from that ``L``:

  - SmoothGrad (and ``smoothed`` with ``base="grad"``, Gaussian): ``sqrt(2/pi) L / sigma``, the
    Lipschitz constant of ``grad f_sigma`` (the expected explanation, which C-LIME converges to as
    well: Agarwal et al., ICML 2021, robustness of SmoothGrad / C-LIME; Tan & Tian 2023, Thm 4.1).
    The n-sample SmoothGrad of a ReLU network is a sum of piecewise-constant gradients: the bound
    covers its expectation, not every draw.
  - C-LIME, LIME (a kernel that does not depend on x: ``kernel="constant"`` or
    ``distance="coalition"``) and KernelSHAP, *as estimated* with their draws fixed (the common
    draws of the robustness metrics): each is a fixed linear map ``A`` of the model outputs
    ``y_j(x)`` at its samples, and ``|y_j(x) - y_j(x')| <= L ||(x - x') * z_j||``, so
    ``Lip <= ||A||_2 sqrt(c) L sqrt(m)`` with ``c`` the largest number of samples that move one
    input element (``n`` for C-LIME) and ``m`` the largest feature's element count (the broadcast).
    The draws are those the metric hands the method at x (:func:`rxlit.metrics.robustness.method_generator`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rxlit.explain.features import feature_groups
from rxlit.explain.lime import lime_coalitions, lime_weights
from rxlit.explain.noise import group_normal
from rxlit.explain.passes import eval_mode
from rxlit.explain.regression import efficient_least_squares
from rxlit.explain.shapley import shap_coalitions
from rxlit.metrics.bounds import resolved_options
from rxlit.rng import Generator

# Lipschitz constants of pointwise activations (max |derivative|).
ACTIVATION_LIPSCHITZ = {"ReLU": 1.0, "LeakyReLU": None, "Softplus": 1.0, "Tanh": 1.0, "Sigmoid": 0.25,
                        "GELU": 1.1289, "SiLU": 1.0998, "ELU": None, "Identity": 1.0, "Flatten": 1.0,
                        "Dropout": 1.0}


def chain(model: nn.Module) -> list[nn.Module]:
    """The leaf layers of ``model`` in forward order, for a chain of modules: ``nn.Sequential``
    (nested) and rxlit's ``NormalizedModel`` (normalisation, then the backbone)."""
    if isinstance(model, nn.Sequential):
        return [leaf for child in model for leaf in chain(child)]
    if hasattr(model, "normalize") and hasattr(model, "backbone"):
        return [model.normalize, *chain(model.backbone)]
    return [model]


def conv_operator_norm(conv: nn.Conv2d, input_shape: tuple[int, ...], max_iter: int = 1000, tol: float = 1e-7,
                       seed: int = 0) -> float:
    """Spectral norm of the convolution (no bias) acting on inputs of ``input_shape`` (C, H, W), by
    power iteration on ``A^T A`` with ``conv2d`` and ``conv_transpose2d`` (the exact adjoint)."""
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError(f"conv_operator_norm supports zero padding given as numbers; got {conv.padding_mode!r} "
                         f"/ {conv.padding!r}")
    w = conv.weight.detach().to(torch.float64)
    args = dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups)
    v = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    v = v.to(w.device) / v.norm()
    out = F.conv2d(v, w, None, **args)
    full = F.conv_transpose2d(out, w, None, **args)
    pad = tuple(n - m for n, m in zip(input_shape[1:], full.shape[2:], strict=True))
    estimate = 0.0
    for _ in range(max_iter):  # sequential by nature; each step is two passes of one image
        back = F.conv_transpose2d(F.conv2d(v, w, None, **args), w, None, output_padding=pad, **args)
        new = float(back.norm())  # ||A^T A v|| with ||v|| = 1: tends to sigma_max^2 from below
        v = back / new
        if abs(new - estimate) <= tol * new:
            estimate = new
            break
        estimate = new
    return math.sqrt(estimate)


def _pool_factor(pool: nn.MaxPool2d) -> float:
    """Max pooling is 1-Lipschitz per window; an input in ``k`` windows contributes ``k`` times."""
    kernel, stride = nn.modules.utils._pair(pool.kernel_size), nn.modules.utils._pair(pool.stride or pool.kernel_size)
    return math.sqrt(math.prod(math.ceil(k / s) for k, s in zip(kernel, stride, strict=True)))


def layer_norm(layer: nn.Module, input_shape: tuple[int, ...]) -> float:
    """An upper bound of the L2 Lipschitz constant of one layer (see the module doc)."""
    name = type(layer).__name__
    if isinstance(layer, nn.Linear):
        return float(torch.linalg.matrix_norm(layer.weight.detach().double(), ord=2))
    if isinstance(layer, nn.Conv2d):
        return conv_operator_norm(layer, input_shape)
    if isinstance(layer, nn.MaxPool2d) and layer.dilation in (1, (1, 1)):
        return _pool_factor(layer)
    if isinstance(layer, nn.BatchNorm2d | nn.BatchNorm1d) and not layer.training:
        scale = layer.weight.detach().abs() if layer.affine else 1.0
        return float((scale / (layer.running_var + layer.eps).sqrt()).max())
    if name == "Normalize":
        return float(1 / layer.std.min())
    if isinstance(layer, nn.LeakyReLU):
        return max(1.0, abs(layer.negative_slope))
    if isinstance(layer, nn.ELU):
        return max(1.0, layer.alpha)
    if ACTIVATION_LIPSCHITZ.get(name) is not None:
        return ACTIVATION_LIPSCHITZ[name]
    raise ValueError(f"no certified Lipschitz constant for layer {name}: global_lipschitz supports chains "
                     "(nn.Sequential, rxlit's NormalizedModel) of Linear, Conv2d (zero padding), MaxPool2d, "
                     "BatchNorm (eval), Normalize and pointwise activations "
                     f"({', '.join(sorted(ACTIVATION_LIPSCHITZ))})")


def global_lipschitz(model: nn.Module, input_shape: tuple[int, ...]) -> Tensor:
    """Certified Lipschitz constant (L2, pixel space) of every logit: a tensor (classes,).

    The product of every layer's bound, the last linear layer counted row by row (the logit of
    class ``t`` only depends on row ``t``). ``input_shape`` is one input's (C, H, W).
    """
    layers = chain(model)
    with eval_mode(model), torch.no_grad():
        device = next(model.parameters()).device
        h = torch.zeros(1, *input_shape, device=device, dtype=next(model.parameters()).dtype)
        product = 1.0
        last = layers[-1]
        for layer in layers[:-1] if isinstance(last, nn.Linear) else layers:
            product *= layer_norm(layer, tuple(h.shape[1:]))
            h = layer(h)
        if isinstance(last, nn.Linear):
            return product * last.weight.detach().double().norm(dim=1).cpu()
        return torch.full((h.shape[1],), product, dtype=torch.float64)


# --- explanation bounds ------------------------------------------------------------------------

def regression_operator(design: Tensor, weights: Tensor | None, alpha: float) -> Tensor:
    """The map ``y -> b`` (B, k, n) of the weighted ridge regression with intercept of
    :func:`rxlit.explain.regression.least_squares` (pseudo-inverse when ``alpha = 0``)."""
    z = design.to(torch.float64)
    w = torch.ones(z.shape[:2], dtype=torch.float64, device=z.device) if weights is None else weights.double()
    centred = z - ((w.unsqueeze(-1) * z).sum(1) / w.sum(1, keepdim=True)).unsqueeze(1)
    weighted = centred.transpose(1, 2) * w.unsqueeze(1)           # Z_c^T W
    gram = weighted @ centred + alpha * torch.eye(z.shape[-1], dtype=torch.float64, device=z.device)
    return torch.linalg.pinv(gram, hermitian=True) @ weighted


def shap_operator(coalitions: Tensor, active: Tensor, chunk: int = 8) -> Tensor:
    """The map ``y -> phi`` (B, k, n) of KernelSHAP's constrained regression
    (:func:`rxlit.explain.regression.efficient_least_squares`, linear in the outputs ``y``; the full
    and empty coalitions are samples 0 and 1), from its response to every basis vector."""
    B, n, k = coalitions.shape
    eye = torch.eye(n, dtype=torch.float64, device=coalitions.device)
    parts = []
    for start in range(0, B, chunk):  # memory tiling: n basis responses per example at once
        z = coalitions[start:start + chunk]
        c = z.shape[0]
        basis = eye.repeat(c, 1)
        phi = efficient_least_squares(z.repeat_interleave(n, 0), basis, basis[:, 1], basis[:, 0],
                                      active[start:start + chunk].repeat_interleave(n, 0))
        parts.append(phi.view(c, n, k).transpose(1, 2))
    return torch.cat(parts)


def _largest_feature(groups) -> Tensor:
    sizes = torch.zeros(groups.index.shape[0], groups.k, dtype=torch.float64, device=groups.index.device)
    return sizes.scatter_add_(1, groups.index, torch.ones_like(groups.index, dtype=torch.float64)).amax(1)


def _sample_bound(operator: Tensor, moved: Tensor, groups) -> Tensor:
    """``||A||_2 sqrt(c) sqrt(m)`` per example (see the module doc)."""
    return torch.linalg.matrix_norm(operator, ord=2) * moved.sqrt() * _largest_feature(groups).sqrt()


def _coalition_moves(coalitions: Tensor) -> Tensor:
    """Per example, the largest number of coalitions that keep one feature (and so move with x)."""
    return coalitions.sum(1).amax(1)


def certified_factor(method: str, options: dict | None, x: Tensor, generator: Generator = None) -> Tensor | None:
    """``certified bound / L`` per example for ``method`` run with ``options`` on ``x`` with the
    draws of ``generator`` (the method's generator at x); None where no bound is certified."""
    if not isinstance(method, str):
        return None
    opts = resolved_options(method, options)
    B = x.shape[0]
    if method == "smoothgrad" or (method == "smoothed" and opts.get("base") == "grad"
                                  and opts.get("kernel") == "gaussian" and not opts.get("base_options")):
        return torch.full((B,), math.sqrt(2 / math.pi) / float(opts["sigma"]), dtype=torch.float64)
    if method not in ("lime", "kernel_shap", "clime"):
        return None
    groups = feature_groups(x, opts.get("features", "elements" if method == "clime" else "grid"),
                            opts.get("n_features", 64), opts.get("feature_options"))
    n = int(opts["n_samples"])
    if method == "clime":
        shifts = float(opts["sigma"]) * group_normal(generator, B, n, groups.k, device=x.device, dtype=x.dtype)
        shifts = shifts * groups.active.unsqueeze(1)
        moved = torch.full((B,), float(n), dtype=torch.float64, device=x.device)
        return _sample_bound(regression_operator(shifts, None, 0.0), moved, groups).cpu()
    if method == "kernel_shap":
        coalitions = shap_coalitions(generator, groups, n, device=x.device)
        return _sample_bound(shap_operator(coalitions, groups.active), _coalition_moves(coalitions), groups).cpu()
    if opts.get("kernel") != "constant" and opts.get("distance") != "coalition":
        return None  # the exponential kernel of a distance to x: the weights move with x
    coalitions = lime_coalitions(generator, groups, n, device=x.device)
    base = torch.zeros_like(x)
    weights = lime_weights(x, base, groups, coalitions, opts.get("distance", "cosine"), opts["kernel_width"],
                           opts.get("kernel", "exponential"))
    operator = regression_operator(coalitions, weights, float(opts["ridge_alpha"]))
    return _sample_bound(operator, _coalition_moves(coalitions), groups).cpu()


def certified_bound(method: str, options: dict | None, x: Tensor, L: Tensor, generator: Generator = None
                    ) -> Tensor | None:
    """Certified explanation-Lipschitz bound per example: :func:`certified_factor` times ``L``
    (per example, e.g. ``global_lipschitz(model, shape)[target]``)."""
    factor = certified_factor(method, options, x, generator)
    return None if factor is None else factor * torch.as_tensor(L, dtype=torch.float64).cpu()
