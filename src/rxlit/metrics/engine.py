"""Chunked evaluation of flattened (examples x samples) perturbation sets.

A metric describes what happens to one chunk of rows (row ``r`` is sample ``r % n`` of example
``r // n``); :func:`map_rows` runs the chunks in order and concatenates their per-row outputs.
Chunks are sized by the memory budget of :func:`rxlit.explain.passes.chunk_rows`, never by a
Python loop over examples or samples.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor, nn

from rxlit.explain.core import explain
from rxlit.explain.passes import chunk_rows, eval_mode, forward_scalar, iter_chunks
from rxlit.explain.registry import get_method, signature_of
from rxlit.rng import Generator


def evaluated(metric: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Run a metric with the model in eval mode (BatchNorm running statistics, no dropout), as
    explanations are; every module's own train/eval flag is restored afterwards."""
    @functools.wraps(metric)
    def wrapper(model: nn.Module, *args, **kwargs) -> Tensor:
        with eval_mode(model):
            return metric(model, *args, **kwargs)

    return wrapper


def default_chunk(x: Tensor, chunk_size: int | None) -> int:
    """Rows of model input per pass: ``chunk_size`` when given, else explain's device-aware memory
    budget (smaller on the CPU, where chunks that stay near the caches run fastest)."""
    return int(chunk_size) if chunk_size else chunk_rows(x)


def map_rows(n_rows: int, chunk_size: int, fn: Callable[[slice], Tensor]) -> Tensor:
    """``torch.cat([fn(rows) for rows in chunks])``: per-row outputs of a flattened set."""
    return torch.cat([fn(rows) for rows in iter_chunks(n_rows, max(1, chunk_size))])


def row_examples(rows: slice, n_samples: int, device) -> Tensor:
    """Example index of each row of a chunk."""
    return torch.arange(rows.start, rows.stop, device=device) // n_samples


def explain_rows(model: nn.Module, x: Tensor, target: Tensor, method, generator: Generator,
                 options: dict, chunk_size: int | None = None, trusted: bool = False) -> Tensor:
    """An explanation of already-resolved targets (no argmax pass), with the metric's generator.

    The metric's chunk size is handed to a method that takes ``chunk_size`` (unless the method
    options set one), so its inner passes (SmoothGrad's noisy copies, LIME's coalitions) use the
    same memory budget as the metric's own passes. ``trusted``: the rows were made by the metric
    from inputs that :func:`rxlit.explain.explain` already validated with the same options, inside
    the metric's eval mode, so the method is called directly (no per-chunk input scan).
    """
    fn = get_method(method)
    signature = signature_of(fn)
    if chunk_size and "chunk_size" not in options and signature.takes("chunk_size"):
        options = {**options, "chunk_size": chunk_size}
    if not trusted:
        return explain(model, x, target, method, generator=generator, **options)
    if generator is not None and signature.takes("generator"):
        options = {**options, "generator": generator}
    out = fn(model, x, target, **options)
    if out.shape != x.shape:
        raise RuntimeError(f"method returned shape {tuple(out.shape)} for input {tuple(x.shape)}")
    return out


def model_output(model: nn.Module, x: Tensor, target: Tensor | None, output: str) -> Tensor:
    """The explained quantity: ``"logit"``/``"prob"`` of the target (a scalar per row) or the
    whole ``"logits"``/``"probs"`` vector (rows x classes)."""
    if output in ("logit", "prob"):
        return forward_scalar(model, x, target, output)
    logits = model(x)
    if output == "logits":
        return logits
    if output == "probs":
        return logits.softmax(dim=1)
    raise ValueError(f"unknown output {output!r}; valid: 'logit', 'prob', 'logits', 'probs'")


def row_norm(v: Tensor) -> Tensor:
    """L2 (Frobenius) norm of every row, flattened."""
    return v.flatten(1).norm(dim=1) if v.dim() > 1 else v.abs()


def safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den != 0`` and ``num`` (Captum's ``safe_div`` with default 1), element-wise
    on tensors; :func:`rxlit.stats.safe_ratio` is the reporting one (NaN for a zero denominator)."""
    return num / torch.where(den == 0, torch.ones_like(den), den)
