"""Infidelity-optimal explanations of Yeh et al. (NeurIPS 2019), "Noisy Baseline" and "Square".

For a perturbation law of ``I``, the explanation minimising
``INFD(phi) = E_I[(I.phi - (f(x) - f(x - I)))^2]`` is the least-squares solution
``phi* = E[I I^T]^-1 E[I (f(x) - f(x - I))]``.

* ``noisy_baseline``: ``x - I = clip(-scale * z, 0, 1)``, ``z ~ N(0, I)`` on every input element
  (scale 0.2, as in Yeh et al.'s code: a noisy black image). ``second_moment="sample"``
  (default) estimates both moments from the same ``n_samples`` draws and solves with the
  pseudo-inverse (the ridge -> 0 limit, a minimum-norm solution when ``n_samples < d``): the
  least-squares fit of the sampled drops, exact for linear f once ``n_samples >= d``.
  ``second_moment="exact"`` uses the closed form ``E[I I^T] = v Id + u u^T`` (``u = x - E[c]``,
  ``v = Var(c)``, elements of ``c = x - I`` i.i.d.; Sherman-Morrison) with only ``E[I df]``
  sampled. It is unbiased but not the default: without the sample second moment the Monte
  Carlo error of ``E[I df]`` no longer cancels and ``1/v`` (~70 at scale 0.2) amplifies it. On
  the digits MLP of the studies (16 examples, infidelity under the same law, 2000 fresh draws):
  sample with 1000 draws 0.060, exact with 1000 draws 9.7, exact with 10000 draws 1.03, Grad 0.27.
* ``square``: ``I = x`` on a square of side ``1..max_side`` (all channels) and 0 elsewhere,
  every position and side enumerated once, uniformly weighted (deterministic, no sampling).
  Writing ``I_s = x * S_s`` for the square's pixel indicator ``S_s``, ``I_s.phi = S_s.g`` with
  ``g_p = sum_c x_cp phi_cp``; ``g* = E[S S^T]^-1 E[S df]`` (one pixels x pixels matrix, the
  same for every example, full rank thanks to the 1x1 squares) and the minimum-norm ``phi``
  with that ``g`` is ``phi_cp = x_cp g_p / |x_p|^2`` -- the pseudo-inverse solution of the
  singular ``E[I I^T]``. Pixels with ``x_p = 0`` are never perturbed and get 0; near-black
  pixels get large weights, as the definition implies.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rxlit import rng
from rxlit.explain.passes import forward_scalar, score_rows
from rxlit.explain.registry import register_method
from rxlit.explain.regression import least_squares


def clipped_noise_moments(scale: float) -> tuple[float, float]:
    """Mean and variance of ``c = clip(-scale * z, 0, 1)``, ``z ~ N(0, 1)``.

    With ``g = -z`` and ``a = 1/scale``: ``E[c] = scale (phi(0) - phi(a)) + Q(a)`` and
    ``E[c^2] = scale^2 (Phi(a) - 1/2 - a phi(a)) + Q(a)`` (phi, Phi, Q = normal pdf, cdf, tail).
    """
    a = 1.0 / scale
    pdf = lambda t: math.exp(-t * t / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = 0.5 * (1 + math.erf(a / math.sqrt(2)))
    mean = scale * (pdf(0) - pdf(a)) + (1 - cdf)
    second = scale**2 * (cdf - 0.5 - a * pdf(a)) + (1 - cdf)
    return mean, second - mean**2


def _exact_solution(x: Tensor, baselines: Tensor, drops: Tensor, scale: float) -> Tensor:
    """``(v Id + u u^T)^-1 E[I df]`` with the sample mean for ``E[I df]``; all (B, d).

    ``E[I df] = x mean(df) - mean_j(c_j df_j)`` with ``c_j = x - I_j`` the baselines (B, n, d):
    one batched product, no (B, n, d) float64 copy of the perturbations.
    """
    mean, var = clipped_noise_moments(scale)
    xf = x.flatten(1).to(torch.float64)
    u = xf - mean
    weighted = (drops.to(baselines.dtype).unsqueeze(1) @ baselines).squeeze(1).to(torch.float64)
    e = xf * drops.mean(dim=1, keepdim=True) - weighted / drops.shape[1]
    return (e - u * (u * e).sum(1, keepdim=True) / (var + (u * u).sum(1, keepdim=True))) / var


@register_method("noisy_baseline", stochastic=True, units="slope")
def noisy_baseline(model: nn.Module, x: Tensor, target: Tensor, *, n_samples: int = 100, scale: float = 0.2,
                   second_moment: str = "sample", generator: rng.Generator = None, output: str = "logit",
                   chunk_size: int | None = None) -> Tensor:
    """Yeh et al.'s (2019) "Noisy Baseline" optimal explanation (see module doc)."""
    if second_moment not in ("exact", "sample"):
        raise ValueError(f"unknown second_moment {second_moment!r}; valid: 'exact', 'sample'")
    batch, n = x.shape[0], n_samples
    noise = rng.normal(generator, batch, (n, *x.shape[1:]), device=x.device, dtype=x.dtype)
    baselines = noise.mul_(-scale).clamp_(0, 1).flatten(0, 1)  # x - I
    with torch.no_grad():
        clean = forward_scalar(model, x, target, output)
    perturbed = score_rows(model, lambda rows: baselines.index_select(0, rows), target, n, output, chunk_size,
                           like=x)
    drops = (clean.unsqueeze(1) - perturbed).to(torch.float64)
    if second_moment == "exact":
        phi = _exact_solution(x, baselines.view(batch, n, -1), drops, scale)
    else:
        perturbation = (x.unsqueeze(1) - baselines.view(batch, n, *x.shape[1:])).flatten(2).to(torch.float64)
        phi = least_squares(perturbation, drops, alpha=0.0, intercept=False)[0]
    return phi.to(x.dtype).view_as(x)


def square_table(height: int, width: int, max_side: int, device=None) -> Tensor:
    """(side, top, left) of every square of side 1..max_side inside a height x width image, by side,
    then row-major. The order both the "square" explanation and the infidelity "square" law use."""
    parts = []
    for side in range(1, min(max_side, height, width) + 1):  # <= 10 sides: a tiny Python loop
        top, left = torch.meshgrid(torch.arange(height - side + 1, device=device),
                                   torch.arange(width - side + 1, device=device), indexing="ij")
        parts.append(torch.stack([torch.full_like(top, side), top, left], -1).reshape(-1, 3))
    return torch.cat(parts)


def square_masks(params: Tensor, height: int, width: int) -> Tensor:
    """Boolean masks (n, height, width) of the squares ``params`` = (side, top, left) rows."""
    side, top, left = (params[:, k].view(-1, 1, 1) for k in range(3))
    h = torch.arange(height, device=params.device).view(1, -1, 1)
    w = torch.arange(width, device=params.device).view(1, 1, -1)
    return (h >= top) & (h < top + side) & (w >= left) & (w < left + side)


@register_method("square")
def square(model: nn.Module, x: Tensor, target: Tensor, *, max_side: int = 4, output: str = "logit",
           chunk_size: int | None = None) -> Tensor:
    """Yeh et al.'s (2019) "Square" optimal explanation: squares of side 1..max_side removed (set
    to 0), all of them, uniformly weighted (see module doc). Costs N forward passes per example,
    N = sum_s (H - s + 1)(W - s + 1)."""
    if x.dim() != 4:
        raise ValueError(f"square needs images (B, C, H, W), got shape {tuple(x.shape)}")
    batch, _, height, width = x.shape
    squares = square_masks(square_table(height, width, max_side, x.device), height, width).flatten(1)
    n = squares.shape[0]
    keep = (~squares).to(x.dtype).view(n, 1, height, width)

    def build(rows: Tensor) -> Tensor:
        return x[rows // n] * keep[rows % n]

    with torch.no_grad():
        clean = forward_scalar(model, x, target, output)
    drops = (clean.unsqueeze(1) - score_rows(model, build, target, n, output, chunk_size, like=x)).to(torch.float64)
    s = squares.to(torch.float64)
    second = s.T @ s / n
    g = torch.linalg.solve(second, (drops @ s / n).T).T  # (B, P)
    energy = (x.to(torch.float64) ** 2).sum(dim=1).flatten(1)  # |x_p|^2 over channels
    scale = torch.where(energy > 1e-12, g / energy.clamp_min(1e-12), torch.zeros_like(g))
    return (x.to(torch.float64) * scale.view(batch, 1, height, width)).to(x.dtype)
