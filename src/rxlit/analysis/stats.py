"""Small statistics used by the studies and their claims (numpy only, no torch).

* Spearman rank correlation (Tan & Tian, ICML 2023, Sec. 6: model vs explanation Lipschitz
  across models of different robustness).
* Log-log slope of a power law (Agarwal et al., ICML 2021: the SmoothGrad / C-LIME gap shrinks
  like ``n^-1/2`` with the number of samples).
* The argmax of a curve (Tan & Tian, Figs. 4-6: the faithfulness-maximising smoothing sigma).
* Mean and Student-t confidence band over examples, per point of a curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks with ties given their average rank (the ranks Spearman's rho uses)."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v), dtype=np.float64)
    ranks[order] = np.arange(1, len(v) + 1)
    for value in np.unique(v):  # a handful of models: a loop over distinct values is fine
        tied = v == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def pearson(a: Sequence[float], b: Sequence[float]) -> float:
    """Pearson correlation; NaN when either sequence is constant or shorter than 2."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) != len(b):
        raise ValueError(f"sequences of different lengths: {len(a)} and {len(b)}")
    if len(a) < 2:
        return math.nan
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else math.nan


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson correlation of the average ranks (as scipy's
    ``spearmanr``). Pairs with a non-finite value are dropped first."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    return pearson(average_ranks(a[keep]), average_ranks(b[keep]))


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """``(slope, intercept)`` of the least-squares line ``log y = slope * log x + intercept``.

    For ``y = c * x^p`` the slope is exactly ``p``; non-positive or non-finite points are dropped.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if keep.sum() < 2:
        return math.nan, math.nan
    slope, intercept = np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)
    return float(slope), float(intercept)


def argmax_point(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """``(x*, y*)`` where ``y`` is largest (first one on ties), NaN values ignored."""
    ys = np.asarray(ys, dtype=np.float64)
    if not np.isfinite(ys).any():
        return math.nan, math.nan
    best = int(np.nanargmax(np.where(np.isfinite(ys), ys, np.nan)))
    return float(xs[best]), float(ys[best])


def t_quantile(q: float, dof: int) -> float:
    """Quantile of Student's t (scipy; it ships with scikit-learn)."""
    from scipy.stats import t

    return float(t.ppf(q, dof))


def ci_band(values: np.ndarray | Sequence[Sequence[float]], confidence: float = 0.95) -> dict[str, list[float]]:
    """Per column of an (examples x points) array: mean and the Student-t interval
    ``mean +- t_{(1+c)/2, n-1} * s / sqrt(n)`` (sample std, ddof 1), NaN entries left out.

    Returns ``{"mean": [...], "low": [...], "high": [...], "n": [...]}`` (one entry per point),
    the same interval as :func:`rxlit.metrics.summarize`.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    out: dict[str, list[float]] = {"mean": [], "low": [], "high": [], "n": []}
    for column in v.T:
        finite = column[np.isfinite(column)]
        n = len(finite)
        mean = float(finite.mean()) if n else math.nan
        half = t_quantile((1 + confidence) / 2, n - 1) * finite.std(ddof=1) / math.sqrt(n) if n > 1 else 0.0
        out["mean"].append(mean)
        out["low"].append(mean - half if n else math.nan)
        out["high"].append(mean + half if n else math.nan)
        out["n"].append(n)
    return out


def monotone_fraction(ys: Sequence[float], decreasing: bool = True) -> float:
    """Fraction of consecutive steps that go the stated way (1.0: strictly monotone)."""
    d = np.diff(np.asarray(ys, dtype=np.float64))
    if len(d) == 0:
        return math.nan
    return float(((d < 0) if decreasing else (d > 0)).mean())


def safe_ratio(a: float, b: float) -> float:
    """``a / b``, NaN when either is missing or ``b`` is 0."""
    if a is None or b is None or not math.isfinite(a) or not math.isfinite(b) or b == 0:
        return math.nan
    return a / b
