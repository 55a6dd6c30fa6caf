"""Scoring perturbed copies of a batch: coalitions of feature groups and additive noise.

A batch of ``B`` examples with ``n`` perturbations each is one flat set of ``B * n`` rows.
The perturbation parameters (coalitions or noise, small) are drawn up front for the whole batch;
the model inputs are built lazily inside each memory-budgeted chunk
(:func:`rxlit.explain.passes.score_rows`), so results never depend on the chunk size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rxlit.explain.features import Groups
from rxlit.explain.passes import score_rows


def constant_value(baseline: Tensor) -> float | None:
    """The value of a baseline expanded from a scalar (all strides 0), else None: such a
    baseline is added as a number instead of being gathered row by row."""
    if baseline.numel() and all(stride == 0 for stride in baseline.stride()):
        return float(baseline.reshape(-1)[0])
    return None


def per_example(rows: Tensor, values: Tensor, example: Tensor, n: int, op) -> Tensor:
    """``op(rows, values[example])`` in place, for per-row data (R, D) and per-example values (B, D).

    When the chunk holds whole examples (``score_rows`` guarantees it whenever ``R`` is a
    multiple of ``n``), each example's values are broadcast over its ``n`` rows instead of being
    gathered into an (R, D) copy first.
    """
    if rows.shape[0] % n == 0:
        blocks = rows.view(-1, n, rows.shape[1])
        return op(blocks, values.index_select(0, example[::n]).unsqueeze(1)).view_as(rows)
    return op(rows, values.index_select(0, example))


def coalition_scores(model: nn.Module, x: Tensor, target: Tensor, groups: Groups, coalitions: Tensor,
                     baseline: Tensor, output: str = "logit", chunk_size: int | None = None) -> Tensor:
    """f at ``baseline + (x - baseline) * z`` for coalitions ``z`` (B, n, k) in {0, 1} (or any
    per-group factor): group ``g`` is kept where ``z_g = 1`` and set to the baseline where 0.
    Returns (B, n)."""
    n = coalitions.shape[1]
    flat = coalitions.to(x.dtype).flatten(0, 1)
    start = baseline.flatten(1)
    delta = x.flatten(1) - start
    constant = constant_value(baseline)

    def build(rows: Tensor) -> Tensor:
        example = rows // n
        keep = groups.expand(flat.index_select(0, rows), example)
        inputs = per_example(keep, delta, example, n, torch.Tensor.mul_)
        if constant is None:
            inputs = per_example(inputs, start, example, n, torch.Tensor.add_)
        elif constant != 0:
            inputs = inputs.add_(constant)
        return inputs.view(-1, *x.shape[1:])

    return score_rows(model, build, target, n, output, chunk_size, like=x)


def shifted_scores(model: nn.Module, x: Tensor, target: Tensor, groups: Groups, shifts: Tensor,
                   output: str = "logit", chunk_size: int | None = None) -> Tensor:
    """f at ``x + xi`` where group ``g`` of example ``b`` is shifted by ``shifts[b, j, g]`` (B, n, k).
    Returns (B, n)."""
    n = shifts.shape[1]
    flat = shifts.to(x.dtype).flatten(0, 1)
    base = x.flatten(1)

    def build(rows: Tensor) -> Tensor:
        example = rows // n
        shift = groups.expand(flat.index_select(0, rows), example)
        return per_example(shift, base, example, n, torch.Tensor.add_).view(-1, *x.shape[1:])

    return score_rows(model, build, target, n, output, chunk_size, like=x)
