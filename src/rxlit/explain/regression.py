"""Batched (weighted, ridge, constrained) least squares for the surrogate-model explanations.

One solve per batch on the model's device, in float64: ``B`` independent regressions of ``n``
samples on ``k`` features. When ``n >= k`` we solve the ``(B, k, k)`` normal equations, else the
``(B, n, n)`` dual (push-through identity ``(A^T A + a I)^-1 A^T = A^T (A A^T + a I)^-1``), so
C-LIME on every pixel never forms a pixels x pixels matrix. ``alpha = 0`` uses the pseudo-inverse,
i.e. the minimum-norm least-squares solution (the ``alpha -> 0`` limit of ridge), which is what
scikit-learn's ``LinearRegression`` (scipy ``lstsq``) returns for rank-deficient designs.
"""

from __future__ import annotations

import torch
from torch import Tensor

# A Cholesky pivot below this fraction of the largest one sends the system to the eigh path.
_PIVOT_RATIO = 1e-10


def pinv_solve(gram: Tensor, rhs: Tensor) -> Tensor:
    """``pinv(gram) @ rhs`` for symmetric PSD ``gram`` (B, m, m).

    Well-conditioned systems (every Cholesky pivot above ``1e-10`` of the largest, far above the
    pseudo-inverse cut-off) are solved by Cholesky, where the pseudo-inverse is the inverse.
    The others, singular or nearly so (e.g. groups absent from an image), go through one batched
    ``eigh`` with eigenvalues below ``m * eps * max_eigenvalue`` counted as zero (numpy/torch's
    pinv cut-off, applied to the Gram matrix). ``eigh`` costs about 20x a Cholesky on CPU for
    these sizes; ``torch.linalg.pinv(hermitian=True)`` is slower still.
    """
    factor, info = torch.linalg.cholesky_ex(gram)
    pivots = factor.diagonal(dim1=-2, dim2=-1) ** 2
    regular = (info == 0) & (pivots.amin(dim=-1) > _PIVOT_RATIO * pivots.amax(dim=-1))
    out = torch.empty_like(rhs)
    if regular.any():
        out[regular] = torch.cholesky_solve(rhs[regular], factor[regular])
    if not regular.all():
        out[~regular] = _eigh_pinv_solve(gram[~regular], rhs[~regular])
    return out


def _eigh_pinv_solve(gram: Tensor, rhs: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh(gram)
    cutoff = gram.shape[-1] * torch.finfo(gram.dtype).eps * values.abs().amax(dim=-1, keepdim=True)
    inverse = torch.where(values > cutoff, 1 / values, torch.zeros_like(values))
    return vectors @ (inverse.unsqueeze(-1) * (vectors.transpose(-2, -1) @ rhs))


def unit_dead_diagonal(gram: Tensor) -> Tensor:
    """``gram`` with 1 on the diagonal of its all-zero rows/columns (a zero design column: the
    pivot and absent groups of KernelSHAP). The pseudo-inverse solution is unchanged (those
    coefficients are 0: their right-hand side is 0, or, in the dual, their design row is 0) and
    the rest is often regular, so it takes the Cholesky path of :func:`pinv_solve`."""
    dead = gram.diagonal(dim1=-2, dim2=-1) == 0
    if not dead.any():
        return gram
    return gram + torch.diag_embed(dead.to(gram.dtype))


def _solve(design: Tensor, response: Tensor, alpha: float) -> Tensor:
    """argmin_b ||response - design b||^2 + alpha ||b||^2 per batch row (min-norm if alpha = 0)."""
    n, k = design.shape[-2:]
    if n >= k:
        gram = design.transpose(1, 2) @ design
        rhs = (design.transpose(1, 2) @ response.unsqueeze(-1))
        if alpha > 0:
            eye = torch.eye(k, dtype=gram.dtype, device=gram.device)
            return torch.linalg.solve(gram + alpha * eye, rhs).squeeze(-1)
        return pinv_solve(unit_dead_diagonal(gram), rhs).squeeze(-1)
    gram = design @ design.transpose(1, 2)
    if alpha > 0:
        eye = torch.eye(n, dtype=gram.dtype, device=gram.device)
        dual = torch.linalg.solve(gram + alpha * eye, response.unsqueeze(-1))
    else:
        dual = pinv_solve(unit_dead_diagonal(gram), response.unsqueeze(-1))
    return (design.transpose(1, 2) @ dual).squeeze(-1)


def least_squares(features: Tensor, response: Tensor, weights: Tensor | None = None, alpha: float = 0.0,
                  intercept: bool = True) -> tuple[Tensor, Tensor]:
    """Weighted ridge regression ``min sum_i w_i (y_i - c - z_i.b)^2 + alpha ||b||^2`` per example.

    ``features`` (B, n, k), ``response`` (B, n), ``weights`` (B, n) or None. The intercept ``c``
    is not penalised; as in scikit-learn's ``Ridge(sample_weight=w)`` it is removed by centring
    on the weighted means. Returns ``(coef (B, k), intercept (B,))`` in float64.
    """
    z = features.to(torch.float64)
    y = response.to(torch.float64)
    w = torch.ones_like(y) if weights is None else weights.to(torch.float64)
    if intercept:
        total = w.sum(dim=1, keepdim=True)
        z_mean = (w.unsqueeze(-1) * z).sum(dim=1) / total
        y_mean = (w * y).sum(dim=1, keepdim=True) / total
        z, y = z - z_mean.unsqueeze(1), y - y_mean
    root = w.sqrt()
    coef = _solve(z * root.unsqueeze(-1), y * root, alpha)
    if not intercept:
        return coef, torch.zeros_like(coef[:, 0])
    return coef, y_mean.squeeze(1) - (z_mean * coef).sum(dim=1)


def efficient_least_squares(coalitions: Tensor, response: Tensor, empty: Tensor, full: Tensor,
                            active: Tensor, weights: Tensor | None = None) -> Tensor:
    """Least squares ``y ~ f(empty) + z.phi`` subject to ``sum(phi) = f(full) - f(empty)``.

    The KernelSHAP regression with its two exact constraints (Lundberg & Lee 2017): the
    intercept is ``f(baseline)`` and the efficiency constraint is enforced by eliminating one
    variable (the last active group ``j``, as the ``shap`` package does):
    ``y - f0 - z_j D = sum_{i != j} (z_i - z_j) phi_i`` with ``D = f(full) - f(empty)``, then
    ``phi_j = D - sum_{i != j} phi_i``. Inactive groups get 0. Returns phi (B, k) in float64.
    """
    z = coalitions.to(torch.float64)
    y = response.to(torch.float64)
    empty, full = empty.to(torch.float64), full.to(torch.float64)
    k = z.shape[-1]
    order = torch.arange(k, device=z.device)
    pivot = (active * (order + 1)).argmax(dim=1, keepdim=True)  # last active group
    keep = active & (order.unsqueeze(0) != pivot)
    z_pivot = z.gather(2, pivot.unsqueeze(1).expand(-1, z.shape[1], 1))
    design = (z - z_pivot) * keep.unsqueeze(1)
    target = y - empty.unsqueeze(1) - z_pivot.squeeze(-1) * (full - empty).unsqueeze(1)
    root = torch.ones_like(y) if weights is None else weights.to(torch.float64).sqrt()
    phi = _solve(design * root.unsqueeze(-1), target * root, 0.0) * keep
    rest = (full - empty) - phi.sum(dim=1)
    return phi.scatter(1, pivot, rest.unsqueeze(1))
