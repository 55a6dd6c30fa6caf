"""Every statistic rxlit reports, in one place (numpy + scipy.stats; no torch).

* Intervals of a mean (Student t) and of a proportion (Wilson or Clopper-Pearson, inside [0, 1]).
* Rank and linear correlation (Tan & Tian, ICML 2023: model vs explanation Lipschitz across
  models), the log-log slope of a power law (Agarwal et al., ICML 2021: the SmoothGrad / C-LIME
  gap shrinks like ``n^-1/2``), the argmax of a curve.
* A paired, hierarchical bootstrap over trained-model seeds and examples, and the three-way
  verdict a claim gets from its interval: *reproduced*, *not reproduced* or *inconclusive* (the
  interval contains the threshold: the data decide nothing).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as sps

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)


# --- intervals ------------------------------------------------------------------------------

def mean_interval(values, confidence: float = 0.95) -> dict[str, float]:
    """``dict(mean, low, high, std, n, n_dropped)`` of the finite values: the Student-t interval
    ``mean +- t_{(1+c)/2, n-1} s / sqrt(n)`` (sample std, ddof 1); no width for one value."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = v[np.isfinite(v)]
    n = len(finite)
    out = {"mean": math.nan, "low": math.nan, "high": math.nan, "std": math.nan, "n": n, "n_dropped": len(v) - n}
    if n == 0:
        return out
    mean = float(finite.mean())
    out.update(mean=mean, low=mean, high=mean, std=0.0)
    if n > 1:
        std = float(finite.std(ddof=1))
        low, high = sps.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n)) if std > 0 else (mean, mean)
        out.update(low=float(low), high=float(high), std=std)
    return out


def proportion_interval(successes: int, n: int, confidence: float = 0.95, method: str = "wilson"
                        ) -> tuple[float, float]:
    """Interval of a binomial proportion, inside [0, 1]: ``"wilson"`` (score interval) or
    ``"exact"`` (Clopper-Pearson), via ``scipy.stats.binomtest``."""
    if n == 0:
        return math.nan, math.nan
    ci = sps.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method=method)
    return float(ci.low), float(ci.high)


def proportion_summary(values, confidence: float = 0.95, method: str = "wilson") -> dict[str, float]:
    """:func:`mean_interval`'s dict for 0/1 values, with the proportion's interval."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = v[np.isfinite(v)]
    if not np.isin(finite, (0.0, 1.0)).all():
        raise ValueError("a proportion needs 0/1 values (e.g. per-example accuracy)")
    out = mean_interval(finite, confidence)
    out["n_dropped"] = len(v) - len(finite)
    out["low"], out["high"] = proportion_interval(int(finite.sum()), len(finite), confidence, method)
    return out


def ci_band(values, confidence: float = 0.95) -> dict[str, list[float]]:
    """Per column of an (examples x points) array: ``{"mean", "low", "high", "n"}`` lists of
    :func:`mean_interval` (NaN entries left out)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[:, None] if v.ndim == 1 else v
    cols = [mean_interval(column, confidence) for column in v.T]
    return {key: [c[key] for c in cols] for key in ("mean", "low", "high", "n")}


# --- correlations, slopes, curves -------------------------------------------------------------

def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks with ties given their average rank (``scipy.stats.rankdata``)."""
    return sps.rankdata(np.asarray(values, dtype=np.float64), method="average")


def _finite_pairs(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"sequences of different lengths: {len(a)} and {len(b)}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def pearson(a: Sequence[float], b: Sequence[float]) -> float:
    """Pearson correlation of the finite pairs; NaN when either is constant or shorter than 2."""
    a, b = _finite_pairs(a, b)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(sps.pearsonr(a, b).statistic)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of the finite pairs (``scipy.stats.spearmanr``, average ranks for
    ties); NaN when either is constant or shorter than 2."""
    a, b = _finite_pairs(a, b)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(sps.spearmanr(a, b).statistic)


def spearman_test(a: Sequence[float], b: Sequence[float], min_n: int = 3) -> tuple[float, float]:
    """Spearman's rho and its two-sided p-value (``scipy.stats.spearmanr``) of the finite pairs;
    NaN for both with fewer than ``min_n`` pairs (3: a p-value of 2 points means nothing) or a
    constant side."""
    a, b = _finite_pairs(a, b)
    if len(a) < max(2, min_n) or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan, math.nan
    result = sps.spearmanr(a, b)
    return float(result.statistic), float(result.pvalue)


def row_pearson(a, b) -> np.ndarray:
    """Pearson correlation of every row of ``a`` with the same row of ``b`` ((rows, n) arrays;
    ``scipy.stats.pearsonr`` along axis 1, in float64); NaN for a constant row or ``n < 2``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"row correlations need two (rows, n) arrays of one shape, got {a.shape} and {b.shape}")
    if a.shape[1] < 2:
        return np.full(a.shape[0], math.nan)
    with warnings.catch_warnings():  # a constant row is undefined (NaN), not an error
        warnings.simplefilter("ignore", sps.ConstantInputWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(sps.pearsonr(a, b, axis=1).statistic, dtype=np.float64)


def row_spearman(a, b) -> np.ndarray:
    """Spearman's rank correlation of every row pair: :func:`row_pearson` of the rows' average
    ranks (``scipy.stats.rankdata``; ``spearmanr`` has no row-wise form)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return row_pearson(sps.rankdata(a, axis=1), sps.rankdata(b, axis=1))


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """``(slope, intercept)`` of the least-squares line ``log y = slope * log x + intercept``
    (``scipy.stats.linregress``); non-positive or non-finite points are dropped."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if keep.sum() < 2:
        return math.nan, math.nan
    fit = sps.linregress(np.log(x[keep]), np.log(y[keep]))
    return float(fit.slope), float(fit.intercept)


def argmax_point(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """``(x*, y*)`` where ``y`` is largest (first one on ties), NaN values ignored."""
    ys = np.asarray(ys, dtype=np.float64)
    if not np.isfinite(ys).any():
        return math.nan, math.nan
    best = int(np.nanargmax(np.where(np.isfinite(ys), ys, np.nan)))
    return float(xs[best]), float(ys[best])


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


# --- bootstrap over seeds and examples ---------------------------------------------------------

def _column_means(values: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # an all-NaN column stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=-2)


def bootstrap(data: Sequence[np.ndarray], statistic: Callable[[np.ndarray], np.ndarray],
              n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Paired, hierarchical percentile bootstrap of ``statistic`` of per-column means.

    ``data[s]`` holds one trained-model seed: an (examples, k) array whose k columns are measured
    on the *same* examples (models, smoothing scales, methods: paired). A replicate resamples the
    seeds with replacement, then each drawn seed's examples with replacement (whole rows, so the
    pairing is kept), averages every column over the drawn rows and seeds, and evaluates
    ``statistic`` on the (replicates, k) array of those means (it must work row-wise and return
    one value per row). With one seed this is the paired bootstrap over examples
    (``scipy.stats.bootstrap(..., paired=True)``'s percentile interval); seeds add the variation
    between trained models, which one seed cannot show.

    Returns ``{"estimate", "low", "high", "n_seeds", "n_examples"}``; ``estimate`` is the
    statistic of the full data's means (NaN-aware).
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in data]
    arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
    if not arrays or any(a.ndim != 2 or a.shape[1] != arrays[0].shape[1] for a in arrays):
        raise ValueError("bootstrap needs one (examples, k) array per seed, with the same k")
    gen = np.random.default_rng(seed)
    full = np.mean([_column_means(a) for a in arrays], axis=0)[None]
    per_seed = np.stack([_column_means(a[gen.integers(0, len(a), (n_resamples, len(a)))]) for a in arrays])
    picks = gen.integers(0, len(arrays), (n_resamples, len(arrays)))
    means = per_seed[picks, np.arange(n_resamples)[:, None]].mean(axis=1)  # (R, k)
    values = np.asarray(statistic(means), dtype=np.float64).reshape(-1)
    alpha = (1 - confidence) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(values, [alpha, 1 - alpha]) if np.isfinite(values).any() else (math.nan,) * 2
    estimate = float(np.asarray(statistic(full), dtype=np.float64).reshape(-1)[0])
    return {"estimate": estimate, "low": float(low), "high": float(high), "n_seeds": len(arrays),
            "n_examples": int(sum(len(a) for a in arrays))}


def rowwise(fn: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], np.ndarray]:
    """A statistic of one vector of column means, applied to every replicate row."""
    return lambda means: np.array([fn(row) for row in means])


# --- verdicts -----------------------------------------------------------------------------------

def verdict_above(low: float, high: float, threshold: float = 0.0) -> str:
    """*reproduced* when the whole interval lies above ``threshold``, *not reproduced* when it lies
    below, else *inconclusive*."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE
    return REPRODUCED if low > threshold else NOT_REPRODUCED if high < threshold else INCONCLUSIVE


def verdict_below(low: float, high: float, threshold: float = 0.0) -> str:
    """*reproduced* when the whole interval lies below ``threshold`` (mirror of :func:`verdict_above`)."""
    return verdict_above(-high, -low, -threshold)


def verdict_within(low: float, high: float, lower: float, upper: float) -> str:
    """An equivalence claim: *reproduced* when the interval lies inside ``[lower, upper]``, *not
    reproduced* when it lies wholly outside it, else *inconclusive*."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE
    if lower <= low and high <= upper:
        return REPRODUCED
    return NOT_REPRODUCED if high < lower or low > upper else INCONCLUSIVE


def combine(verdicts: Sequence[str]) -> str:
    """A claim made of parts: *reproduced* when every part is, *not reproduced* when any part is
    not, else *inconclusive*."""
    if verdicts and all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    return NOT_REPRODUCED if NOT_REPRODUCED in verdicts else INCONCLUSIVE
