"""KernelSHAP (Lundberg & Lee, NeurIPS 2017), 100 samples in Tan & Tian (ICML 2023).

Coalitions are drawn as Captum's ``KernelShap`` draws them: the full and the empty coalition
first, then for each further sample a size ``s`` with ``p(s) ~ (M - 1) / (s (M - s))``,
``s = 1..M-1``, and a uniformly random subset of that size. Sampling sizes from the Shapley
kernel makes the regression unweighted (each sample has weight 1) and equivalent in expectation
to Shapley-kernel weights ``(M - 1) / (C(M, s) s (M - s))`` on uniform coalitions.

Efficiency (``sum_g phi_g = f(x) - f(baseline)``) and the intercept ``f(baseline)`` are exact
constraints, enforced by eliminating one variable (:func:`efficient_least_squares`), the limit
of Captum's approach of giving the two end coalitions weight 1e6. The constraint holds for the
group weights; each is broadcast to every pixel of its group.
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
from rxlit.explain.regression import efficient_least_squares


def shapley_size_cdf(active_counts: Tensor, k: int) -> Tensor:
    """CDF (B, k-1) over coalition sizes ``s = 1..k-1`` with ``p(s) ~ (M-1)/(s (M-s))``, ``s < M``."""
    size = torch.arange(1, k, dtype=torch.float64, device=active_counts.device).unsqueeze(0)
    m = active_counts.to(torch.float64).unsqueeze(1)
    p = torch.where(size < m, (m - 1) / (size * (m - size)).clamp_min(1), torch.zeros_like(size))
    p = p / p.sum(dim=1, keepdim=True).clamp_min(1e-300)
    return p.cumsum(dim=1)


def shap_coalitions(generator: rng.Generator, groups: Groups, n: int, device=None) -> Tensor:
    """Coalitions (B, n, k): all active groups, none, then ``n - 2`` Shapley-kernel samples.

    Sizes come from inverse-CDF sampling of one uniform per sample; the subset is the ``s``
    active groups with the smallest of ``k`` further uniforms (inactive groups rank last).
    Examples with a single active group get empty extra samples (their phi is exact anyway).
    """
    if n < 3:
        raise ValueError("kernel_shap needs n_samples >= 3 (the full, the empty and one sampled coalition)")
    batch, k = groups.active.shape
    active = groups.active.unsqueeze(1)
    counts = groups.active.sum(dim=1)
    u_size = rng.uniform(generator, batch, (n - 2,), device=device, dtype=torch.float64)
    u_pick = group_uniform(generator, batch, n - 2, k, device=device)
    if k > 1:
        cdf = shapley_size_cdf(counts, k)
        index = torch.searchsorted(cdf, u_size, right=True)  # round-off may give u >= cdf[-1]
        size = torch.minimum(index, (counts - 2).clamp_min(0).unsqueeze(1)) + 1
        size = torch.where(counts.unsqueeze(1) > 1, size, torch.zeros_like(size))
    else:
        size = torch.zeros_like(u_size, dtype=torch.long)
    # The s active groups with the smallest uniforms: those at or below the s-th smallest value
    # (one sort; float64 uniforms do not tie). Inactive groups rank last with 2.0.
    keys = torch.where(active, u_pick, torch.full_like(u_pick, 2.0))
    cutoff = keys.sort(dim=2).values.gather(2, (size - 1).clamp_min(0).unsqueeze(-1))
    sampled = (keys <= cutoff) & (size > 0).unsqueeze(-1)
    ends = torch.stack([groups.active, torch.zeros_like(groups.active)], dim=1)
    return torch.cat([ends, sampled], dim=1).to(torch.float64)


@register_method("kernel_shap", stochastic=True, units="attribution", broadcast=feature_sizes)
def kernel_shap(model: nn.Module, x: Tensor, target: Tensor, *, n_samples: int = 100,
                features: str | Tensor = "grid", n_features: int = 64, feature_options: dict | None = None,
                baseline: float | Tensor = 0.0, generator: rng.Generator = None, output: str = "logit",
                chunk_size: int | None = None) -> Tensor:
    """KernelSHAP with ``n_samples`` model evaluations per example (the full and empty coalitions
    included, as in Captum), reference ``baseline`` (0) and exact efficiency (see module doc)."""
    groups = feature_groups(x, features, n_features, feature_options)
    coalitions = shap_coalitions(generator, groups, n_samples, device=x.device)
    scores = coalition_scores(model, x, target, groups, coalitions, as_baseline(baseline, x), output, chunk_size)
    phi = efficient_least_squares(coalitions, scores, scores[:, 1], scores[:, 0], groups.active)
    return groups.broadcast(phi.to(x.dtype), x.shape)
