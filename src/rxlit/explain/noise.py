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


def group_uniform(generator: rng.Generator, batch: int, n: int, k: int, device=None,
                  dtype=torch.float64) -> Tensor:
    """Uniforms (batch, n, k) for ``n`` samples over ``k`` feature groups, drawn group-major.

    Drawn as (k, n) and transposed, so with an :class:`~rxlit.rng.ExampleRNG` the values of an
    example's group ``g`` do not depend on ``k`` -- the largest group count in the batch (e.g.
    quickshift superpixels): an example gets the same coalitions alone or in any batch.
    """
    return rng.uniform(generator, batch, (k, n), device=device, dtype=dtype).transpose(1, 2)


def group_normal(generator: rng.Generator, batch: int, n: int, k: int, device=None,
                 dtype=torch.float64) -> Tensor:
    """Standard normals (batch, n, k), group-major like :func:`group_uniform` (Box-Muller on two
    group-major uniform draws; :func:`rxlit.rng.normal`'s layout would depend on ``k``)."""
    u1 = group_uniform(generator, batch, n, k, device, torch.float64)
    u2 = group_uniform(generator, batch, n, k, device, torch.float64)
    radius = torch.sqrt(-2 * torch.log(u1.clamp_min(torch.finfo(torch.float64).tiny)))
    return (radius * torch.cos(2 * math.pi * u2)).to(dtype)

