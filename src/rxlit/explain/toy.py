"""Closed-form models for the property tests of Tan & Tian (2023), Yeh et al. (2019) and
Agarwal et al. (2021): a linear score and the piecewise toy of Tan & Tian section 5.2.

Tan & Tian do not spell out the toy's exact formula here; we use the piecewise-linear
``f(x1, x2) = x1 if x1 >= x2 else x2`` (i.e. ``max(x1, x2)``). At a point with ``x1 > x2`` its
gradient is ``[1, 0]`` while the Gaussian-smoothed gradient is
``[Phi(t), 1 - Phi(t)]``, ``t = (x1 - x2) / (sqrt(2) sigma)``, which tends to ``[0.5, 0.5]`` as
sigma grows: smoothing trades faithfulness to the local gradient for robustness.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class LinearScore(nn.Module):
    """``logits = x.flatten(1) @ theta.T + bias``: ``f_c(x) = theta_c . x + b_c`` for every class c."""

    def __init__(self, theta: Tensor, bias: Tensor | None = None):
        super().__init__()
        theta = theta.reshape(theta.shape[0], -1) if theta.dim() > 1 else theta.view(1, -1)
        self.theta = nn.Parameter(theta.clone(), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(theta.shape[0], dtype=theta.dtype) if bias is None else bias.clone(),
                                 requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.theta.T + self.bias


class PiecewiseToy(nn.Module):
    """Tan & Tian section 5.2-style toy on inputs (B, 2): one logit ``max(x1, x2)`` (see module doc)."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        return torch.where(x[:, :1] >= x[:, 1:2], x[:, :1], x[:, 1:2])


def toy_smoothed_gradient(x1: float, x2: float, sigma: float) -> tuple[float, float]:
    """The exact Gaussian-smoothed gradient of :class:`PiecewiseToy` at ``(x1, x2)``."""
    t = (x1 - x2) / (math.sqrt(2) * sigma)
    first = 0.5 * (1 + math.erf(t / math.sqrt(2)))
    return first, 1 - first
