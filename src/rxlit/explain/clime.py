"""C-LIME, continuous LIME (Agarwal et al., ICML 2021, "Towards the Unification and Robustness of
Perturbation and Gradient Based Explanations").

Perturb every input feature (or every feature group, when ``features`` is given) with
``xi ~ N(0, sigma^2 I)`` and fit the *unweighted* least squares of ``f(x + xi)`` on ``xi`` with an
intercept. As ``n -> inf`` the slope is ``Cov(xi)^-1 Cov(xi, f) = sigma^-2 E[xi f(x + xi)] =
E[grad f(x + xi)]`` (Stein's identity): C-LIME and SmoothGrad with the same sigma converge to
the same vector, and both equal theta for a linear ``f = theta.x``.

With ``n_samples <= d`` (e.g. 100 samples on 3072 pixels) the regression is underdetermined; we
return the minimum-norm least-squares solution (pseudo-inverse, via the ``n x n`` dual system).
"""

from __future__ import annotations

from torch import Tensor, nn

from rxlit import rng
from rxlit.explain.features import feature_groups
from rxlit.explain.noise import group_normal
from rxlit.explain.perturbation import shifted_scores
from rxlit.explain.registry import register_method
from rxlit.explain.regression import least_squares


@register_method("clime", stochastic=True, units="slope")
def clime(model: nn.Module, x: Tensor, target: Tensor, *, sigma: float = 0.03, n_samples: int = 100,
          features: str | Tensor | None = None, n_features: int = 64, feature_options: dict | None = None,
          generator: rng.Generator = None, output: str = "logit", chunk_size: int | None = None) -> Tensor:
    """C-LIME (Agarwal et al. 2021): slope of the OLS of ``f(x + xi)`` on ``xi ~ N(0, sigma^2 I)``.

    ``features=None`` perturbs every input element independently; with groups (``"grid"``,
    ``"quickshift"``, a label tensor) one shift per group is added to all its pixels, and the
    group's slope is broadcast back to them.
    """
    groups = feature_groups(x, features, n_features, feature_options)
    shifts = sigma * group_normal(generator, x.shape[0], n_samples, groups.k, device=x.device, dtype=x.dtype)
    shifts = shifts * groups.active.unsqueeze(1)
    scores = shifted_scores(model, x, target, groups, shifts, output, chunk_size)
    coef = least_squares(shifts, scores, alpha=0.0, intercept=True)[0]
    return groups.broadcast(coef.to(x.dtype), x.shape)
