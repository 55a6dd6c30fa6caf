"""Helpers shared by the studies: per-example summaries, table cells, saliency arrays."""

from __future__ import annotations

import math

import numpy as np
import torch

from rxlit.explain import explain
from rxlit.metrics import summarize
from rxlit.rng import ExampleRNG


def cell(values) -> dict:
    """A table cell: mean with its 95% Student-t interval over examples (``summarize``)."""
    s = summarize(torch.as_tensor(values).detach().cpu())
    return {"mean": s["mean"], "low": s["ci_low"], "high": s["ci_high"], "n": s["n"]}


def mean(values) -> float:
    v = torch.as_tensor(values, dtype=torch.float64).detach().cpu()
    v = v[torch.isfinite(v)]
    return float(v.mean()) if v.numel() else math.nan


def keyed_explain(ctx, model, method, options: dict, stream: int = 0) -> torch.Tensor:
    """``explain`` on the study subset with noise keyed by (study seed, example index)."""
    x, y, index = ctx.subset()
    return explain(model, x, y, method, generator=ExampleRNG(ctx.seed, index, 0, stream), **options).detach()


def saliency_rows(x: torch.Tensor, phis: list[torch.Tensor], n: int) -> np.ndarray:
    """``(n, 1 + len(phis), H, W)``: the input (channel mean) then each attribution (channel sum)."""
    cols = [x[:n].mean(1)] + [p[:n].sum(1) for p in phis]
    return torch.stack(cols, 1).detach().cpu().numpy().astype(np.float32)


def fmt(value: float, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "nan"
    return f"{value:.{digits}g}"
