"""Helpers shared by the studies: table cells with intervals, claims with verdicts, saliency arrays.

Every number a study reports is a mean over examples and trained-model seeds with a 95% interval
from the paired, hierarchical bootstrap of :func:`rxlit.stats.bootstrap` (proportions: Wilson's
interval); every claim is *reproduced*, *not reproduced* or *inconclusive*, decided by such an
interval (:mod:`rxlit.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from rxlit import stats
from rxlit.explain import explain
from rxlit.metrics import tan_faithfulness
from rxlit.rng import ExampleRNG

N_RESAMPLES = 2000

# Faithfulness variants: label -> tan_faithfulness options. MAIN (each method in its own units) decides
# the claims; the paper's protocol (every method against the slope p), Pearson and Spearman are shown beside.
FAITHFULNESS = {"1/L2": {}, "1/L2, paper protocol": {"protocol": "paper"}, "Pearson": {"similarity": "pearson"},
                "Spearman": {"similarity": "spearman"}}
MAIN = "1/L2"


def as_array(values) -> np.ndarray:
    return torch.as_tensor(values, dtype=torch.float64).detach().cpu().numpy().reshape(-1)


def columns(per_seed: Sequence[Sequence]) -> list[np.ndarray]:
    """``per_seed[s][k]`` (values per example) -> one (examples, k) array per seed (paired columns)."""
    return [np.stack([as_array(v) for v in seed], 1) for seed in per_seed]


def interval(per_seed: Sequence[Sequence], statistic: Callable[[np.ndarray], np.ndarray], seed: int = 0) -> dict:
    """:func:`rxlit.stats.bootstrap` of ``statistic`` over seeds and examples (paired columns)."""
    return stats.bootstrap(columns(per_seed), statistic, n_resamples=N_RESAMPLES, seed=seed)


def cell(per_seed) -> dict:
    """A table cell: the mean over seeds and examples with its 95% bootstrap interval. ``per_seed``
    is a list with one tensor of per-example values per seed (or one tensor)."""
    per_seed = [per_seed] if isinstance(per_seed, torch.Tensor | np.ndarray) else list(per_seed)
    out = interval([[v] for v in per_seed], lambda m: m[:, 0])
    return {"mean": out["estimate"], "low": out["low"], "high": out["high"], "n": out["n_examples"]}


def proportion_cell(per_seed) -> dict:
    """A proportion over every seed's examples (0/1 values) with Wilson's interval."""
    values = np.concatenate([as_array(v) for v in per_seed])
    s = stats.proportion_summary(values)
    return {"mean": s["mean"], "low": s["low"], "high": s["high"], "n": s["n"]}


def mean(values) -> float:
    """Plain mean of the finite values of one tensor or of a list of per-seed tensors."""
    v = np.concatenate([as_array(t) for t in values]) if isinstance(values, list) else as_array(values)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else math.nan


def ratio_of_means(m: np.ndarray) -> np.ndarray:
    """Column 0's mean over column 1's (a bootstrap statistic)."""
    return m[:, 0] / m[:, 1]


def difference(m: np.ndarray) -> np.ndarray:
    return m[:, 0] - m[:, 1]


def claim(text: str, paper: str, measured: str, verdict: str, why: str) -> dict:
    if verdict not in stats.VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}")
    return {"claim": text, "paper": paper, "measured": measured, "verdict": verdict, "why": why}


def fmt_interval(d: dict, digits: int = 3) -> str:
    value = d.get("estimate", d.get("mean"))
    return f"{fmt(value, digits)} [{fmt(d['low'], digits)}, {fmt(d['high'], digits)}]"


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


def faithfulness_variants(ctx, model, x, y, phi, method: str, options: dict) -> dict:
    """Tan & Tian faithfulness of ``phi`` under every :data:`FAITHFULNESS` variant (study settings first)."""
    return {label: tan_faithfulness(model, x, y, attributions=phi, method=method, method_options=options,
                                    **{**ctx.study["faithfulness"], **extra}) for label, extra in FAITHFULNESS.items()}
