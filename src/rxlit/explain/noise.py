"""Smoothing kernels and the sample-count rule shared by SmoothGrad, UniGrad and ``smoothed``.

Tan & Tian (ICML 2023, section 4) smooth a model with a kernel mu,
``f_mu(x) = E_{z ~ mu}[f(x + z)]``: Gaussian ``N(0, sigma^2 I)`` (SmoothGrad) or uniform on
``[-r, r]^d`` (UniGrad). We add a Laplace kernel. Every draw goes through :mod:`rxlit.rng`, so a
batch's noise is drawn in one call and is the same whatever the chunk size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from rxlit import rng

KERNELS = ("gaussian", "uniform", "laplace")


def tan_tian_samples(scale: float) -> int:
    """Tan & Tian's sample count: ``n = 10 if sigma < 0.01 else floor(sigma / 0.01) * 10``.

    The ratio is rounded to 9 decimals before the floor so that 0.03 / 0.01 = 2.9999999999999996
    counts as 3 (30 samples), as the paper intends.
    """
    if scale < 0.01:
        return 10
    return int(math.floor(round(scale / 0.01, 9))) * 10


def resolve_samples(n: int | None, scale: float) -> int:
    n = tan_tian_samples(scale) if n is None else int(n)
    if n < 1:
        raise ValueError(f"the number of noise samples must be positive, got {n}")
    return n


def draw(kernel: str, scale: float, generator: rng.Generator, batch: int, shape: Sequence[int],
         device=None, dtype=torch.float32) -> Tensor:
    """Noise of shape (batch, *shape) from ``kernel`` with scale parameter ``scale``.

    gaussian: ``N(0, scale^2)``; uniform: ``U[-scale, scale]`` (UniGrad's r); laplace: density
    ``exp(-|z| / scale) / (2 scale)`` (standard deviation ``sqrt(2) * scale``).
    """
    if kernel == "gaussian":
        return scale * rng.normal(generator, batch, shape, device=device, dtype=dtype)
    if kernel == "uniform":
        return scale * (2 * rng.uniform(generator, batch, shape, device=device, dtype=dtype) - 1)
    if kernel == "laplace":
        centred = rng.uniform(generator, batch, shape, device=device, dtype=dtype) - 0.5
        # Inverse CDF; torch.rand may return exactly 0, hence the clamp that keeps the log finite.
        tail = (1 - 2 * centred.abs()).clamp_min(torch.finfo(centred.dtype).tiny)
        return -scale * centred.sign() * torch.log(tail)
    raise ValueError(f"unknown kernel {kernel!r}; valid kernels: {', '.join(KERNELS)}")
