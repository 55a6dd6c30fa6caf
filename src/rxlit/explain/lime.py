"""LIME (Ribeiro et al., KDD 2016) as used by Tan & Tian (ICML 2023): superpixel/patch
features, 100 binary coalitions, an exponential kernel and ridge regression (ridge_alpha = 1).

Per example: coalitions ``z_j ~ Bernoulli(1/2)^k`` (Captum's default sampler), inputs
``baseline + (x - baseline) * z_j`` broadcast over each group's pixels, weights
``pi_j = exp(-D_j^2 / (2 width^2))`` and the weighted ridge regression with intercept
``min sum_j pi_j (f_j - c - z_j.b)^2 + ridge_alpha ||b||^2``; ``b`` is broadcast to the pixels.

``kernel="constant"`` gives every coalition weight 1: the LIME of Tan & Tian's Theorem 4.1 (their
bound assumes a constant kernel; with the exponential one the weights depend on x).

Kernel distance (documented choice, Captum's default so that results match ``captum.attr.Lime``):
``distance="cosine"``: cosine distance between the flattened original input ``x`` and the
perturbed input, width 1.0, ``exp(-D^2 / (2 width^2))``. ``"euclidean"``: Euclidean distance
between them (Captum's other mode). ``"coalition"``: cosine distance between the coalition and the
all-ones vector (the ``lime`` package's choice; it uses width 0.25 there).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rxlit import rng
from rxlit.explain.features import Groups, feature_groups, feature_sizes
from rxlit.explain.gradients import as_baseline
from rxlit.explain.noise import group_uniform
from rxlit.explain.perturbation import coalition_scores
from rxlit.explain.registry import register_method
from rxlit.explain.regression import least_squares

DISTANCES = ("cosine", "euclidean", "coalition")
KERNELS = ("exponential", "constant")
_EPS = 1e-8  # torch.nn.CosineSimilarity's eps, as in Captum


def lime_coalitions(generator: rng.Generator, groups: Groups, n: int, device=None) -> Tensor:
    """Coalitions (B, n, k): each active group kept with probability 1/2 (inactive groups: 0)."""
    draws = group_uniform(generator, groups.index.shape[0], n, groups.k, device=device)
    return ((draws < 0.5) & groups.active.unsqueeze(1)).to(torch.float64)


def kernel_distance(x: Tensor, baseline: Tensor, groups: Groups, coalitions: Tensor, distance: str) -> Tensor:
    """Distances (B, n) between x and its perturbations, from per-group sums (no image is formed).

    With ``p = b + (x - b) * z`` and binary z: ``x.p = x.b + sum_g z_g [x (x - b)]_g`` and
    ``|p|^2 = |b|^2 + sum_g z_g [(x - b)^2 + 2 b (x - b)]_g``.
    """
    z = coalitions.to(torch.float64)
    xf, bf = x.flatten(1).to(torch.float64), baseline.flatten(1).to(torch.float64)
    delta = xf - bf
    if distance == "coalition":
        kept = z.sum(dim=2)
        size = groups.active.sum(dim=1, keepdim=True).to(torch.float64)
        return 1 - kept / (kept.sqrt() * size.sqrt()).clamp_min(_EPS)
    if distance == "euclidean":
        return ((1 - z) @ groups.sums(delta**2).unsqueeze(-1)).squeeze(-1).clamp_min(0).sqrt()
    if distance != "cosine":
        raise ValueError(f"unknown distance {distance!r}; valid: {', '.join(DISTANCES)}")
    dot = (xf * bf).sum(1, keepdim=True) + (z @ groups.sums(xf * delta).unsqueeze(-1)).squeeze(-1)
    norm2 = (bf**2).sum(1, keepdim=True) + (z @ groups.sums(delta**2 + 2 * bf * delta).unsqueeze(-1)).squeeze(-1)
    norms = xf.norm(dim=1, keepdim=True) * norm2.clamp_min(0).sqrt()
    return 1 - dot / norms.clamp_min(_EPS)


def lime_weights(x: Tensor, baseline: Tensor, groups: Groups, coalitions: Tensor, distance: str = "cosine",
                 kernel_width: float = 1.0, kernel: str = "exponential") -> Tensor:
    """Exponential-kernel weights ``exp(-D^2 / (2 width^2))`` (B, n), Captum's formula; all 1 for
    ``kernel="constant"``."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; valid: {', '.join(KERNELS)}")
    if kernel == "constant":
        return torch.ones(coalitions.shape[:2], dtype=torch.float64, device=coalitions.device)
    d = kernel_distance(x, baseline, groups, coalitions, distance)
    return torch.exp(-(d**2) / (2 * kernel_width**2))


def lime_solve(coalitions: Tensor, scores: Tensor, weights: Tensor, ridge_alpha: float) -> Tensor:
    """Group coefficients (B, k) of the weighted ridge regression with intercept."""
    return least_squares(coalitions, scores, weights, alpha=ridge_alpha, intercept=True)[0]


@register_method("lime", stochastic=True, units="attribution", broadcast=feature_sizes)
def lime(model: nn.Module, x: Tensor, target: Tensor, *, n_samples: int = 100, features: str | Tensor = "grid",
         n_features: int = 64, feature_options: dict | None = None, ridge_alpha: float = 1.0,
         kernel_width: float = 1.0, distance: str = "cosine", kernel: str = "exponential",
         baseline: float | Tensor = 0.0, generator: rng.Generator = None, output: str = "logit",
         chunk_size: int | None = None) -> Tensor:
    """LIME with ``n_samples`` binary coalitions of ``features`` groups (see module doc), reference
    ``baseline`` (0), ridge strength ``ridge_alpha`` (1.0, Tan & Tian 2023) on the *sum* of the weighted squared
    errors, exponential kernel of ``distance`` with ``kernel_width`` (or ``kernel="constant"``).
    All examples' regressions are one batched solve."""
    groups = feature_groups(x, features, n_features, feature_options)
    base = as_baseline(baseline, x)
    coalitions = lime_coalitions(generator, groups, n_samples, device=x.device)
    scores = coalition_scores(model, x, target, groups, coalitions, base, output, chunk_size)
    weights = lime_weights(x, base, groups, coalitions, distance, kernel_width, kernel)
    coef = lime_solve(coalitions, scores, weights, ridge_alpha)
    return groups.broadcast(coef.to(x.dtype), x.shape)
