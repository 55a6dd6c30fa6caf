"""rxlit.stats: every reported statistic, against closed forms and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from rxlit import stats


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 30).astype(float)   # many ties
    b = a + rng.normal(0, 2, 30)
    assert stats.spearman(a, b) == pytest.approx(sps.spearmanr(a, b).statistic, abs=1e-12)


def test_spearman_closed_forms():
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert stats.spearman(x, np.exp(x)) == pytest.approx(1.0)        # any increasing map
    assert stats.spearman(x, [-v**3 for v in x]) == pytest.approx(-1.0)
    # one swapped pair out of n = 6: rho = 1 - 6 * 2 / (n (n^2 - 1)) = 1 - 12/210
    assert stats.spearman(x, [1, 2, 4, 3, 5, 6]) == pytest.approx(1 - 12 / 210)
    assert math.isnan(stats.spearman(x, [2.0] * 6))                   # constant: undefined
    assert stats.spearman([1, 2, np.nan, 4], [1, 2, 3, 4]) == pytest.approx(1.0)  # NaN pairs dropped


def test_average_ranks():
    np.testing.assert_allclose(stats.average_ranks([10, 20, 20, 5]), [2, 3.5, 3.5, 1])
    np.testing.assert_allclose(stats.average_ranks([3, 1, 2]), sps.rankdata([3, 1, 2]))


def test_pearson_matches_numpy_and_checks_lengths():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=20), rng.normal(size=20)
    assert stats.pearson(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)
    with pytest.raises(ValueError, match="different lengths"):
        stats.pearson([1, 2], [1, 2, 3])


def test_row_correlations_agree_with_the_per_vector_ones():
    """The metrics' row-wise correlations (faithfulness) and the studies' per-vector ones are one
    statistic: equal row by row, ties and an undefined (constant) row included."""
    rng = np.random.default_rng(2)
    a = rng.integers(0, 4, (5, 12)).astype(float)  # ties
    b = a + rng.normal(0, 1.5, (5, 12))
    b[3] = 7.0  # a constant row: undefined
    rho, r = stats.row_spearman(a, b), stats.row_pearson(a, b)
    for i in range(5):
        for row, vector in ((rho, stats.spearman), (r, stats.pearson)):
            expected = vector(a[i], b[i])
            assert (math.isnan(row[i]) and math.isnan(expected)) or row[i] == pytest.approx(expected, abs=1e-12)
    assert stats.spearman_test(a[0], b[0])[0] == pytest.approx(stats.spearman(a[0], b[0]), abs=1e-15)
    assert stats.spearman_test(a[0], b[0])[1] == pytest.approx(sps.spearmanr(a[0], b[0]).pvalue)
    assert all(math.isnan(v) for v in stats.spearman_test([1, 2], [2, 1]))  # 2 points: no p-value
    assert np.isnan(stats.row_pearson(a[:, :1], b[:, :1])).all()  # one column: undefined


def test_loglog_slope_recovers_power_laws():
    n = np.array([16, 32, 64, 128, 256, 512])
    slope, intercept = stats.loglog_slope(n, 3.0 * n ** -0.5)
    assert slope == pytest.approx(-0.5, abs=1e-12)
    assert intercept == pytest.approx(math.log(3.0), abs=1e-12)
    assert stats.loglog_slope(n, 0.1 * n ** 2.0)[0] == pytest.approx(2.0, abs=1e-12)
    # non-positive points are dropped, not fitted
    assert stats.loglog_slope([1, 2, 4, 8], [1.0, 0.0, 0.25, 0.125])[0] == pytest.approx(-1.0, abs=1e-12)
    assert math.isnan(stats.loglog_slope([1, 2], [1.0, -1.0])[0])


def test_loglog_slope_matches_scipy_linregress_on_noisy_data():
    rng = np.random.default_rng(2)
    x = np.geomspace(10, 1e4, 12)
    y = x ** -0.5 * np.exp(rng.normal(0, 0.1, 12))
    assert stats.loglog_slope(x, y)[0] == pytest.approx(sps.linregress(np.log(x), np.log(y)).slope, abs=1e-10)


def test_ci_band_is_the_student_t_interval():
    rng = np.random.default_rng(3)
    v = rng.normal(5.0, 2.0, size=(25, 3))
    band = stats.ci_band(v, confidence=0.9)
    for j in range(3):
        low, high = sps.t.interval(0.9, 24, loc=v[:, j].mean(), scale=sps.sem(v[:, j]))
        assert band["mean"][j] == pytest.approx(v[:, j].mean())
        assert band["low"][j] == pytest.approx(low) and band["high"][j] == pytest.approx(high)
    assert band["n"] == [25, 25, 25]


def test_ci_band_drops_nan_and_single_values():
    band = stats.ci_band(np.array([[1.0, np.nan], [3.0, 2.0]]))
    assert band["n"] == [2, 1]
    assert band["mean"] == [2.0, 2.0]
    assert band["low"][1] == band["high"][1] == 2.0   # one value: no width
    # two values: mean +- t_{0.975, 1} * s / sqrt(2) with s = sqrt(2)
    assert band["high"][0] - 2.0 == pytest.approx(sps.t.ppf(0.975, 1) * math.sqrt(2) / math.sqrt(2))


def test_ci_band_agrees_with_metrics_summarize():
    import torch

    from rxlit.metrics import summarize

    v = np.random.default_rng(4).exponential(size=40)
    s, band = summarize(torch.tensor(v)), stats.ci_band(v)
    assert band["low"][0] == pytest.approx(s["ci_low"]) and band["high"][0] == pytest.approx(s["ci_high"])


def test_argmax_monotone_and_ratio():
    assert stats.argmax_point([0.01, 0.03, 0.1], [1.0, 3.0, 2.0]) == (0.03, 3.0)
    assert stats.argmax_point([1, 2, 3], [np.nan, 1.0, 1.0]) == (2.0, 1.0)   # first on ties, NaN ignored
    assert all(math.isnan(v) for v in stats.argmax_point([1, 2], [np.nan, np.nan]))
    assert stats.monotone_fraction([5, 4, 3, 3.5]) == pytest.approx(2 / 3)
    assert stats.monotone_fraction([1, 2, 3], decreasing=False) == 1.0
    assert stats.safe_ratio(6.0, 3.0) == 2.0 and math.isnan(stats.safe_ratio(1.0, 0.0))


def test_proportion_intervals_stay_inside_zero_one():
    # 31 of 32 correct: the Student-t interval of the 0/1 values leaves [0, 1] ([0.90, 1.03])
    low, high = stats.proportion_interval(31, 32)
    assert 0 < low < 31 / 32 < high <= 1
    # Wilson's score interval in closed form
    p, n, z = 31 / 32, 32, sps.norm.ppf(0.975)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    # Clopper-Pearson at 32 of 32: the lower end is (alpha / 2)^(1 / n)
    assert stats.proportion_interval(32, 32, method="exact")[0] == pytest.approx(0.025 ** (1 / 32))
    summary = stats.proportion_summary([1.0] * 31 + [0.0])
    assert summary["mean"] == 31 / 32 and summary["high"] <= 1
    with pytest.raises(ValueError, match="0/1 values"):
        stats.proportion_summary([0.5, 1.0])


def test_one_seed_bootstrap_is_scipys_paired_percentile_interval():
    rng = np.random.default_rng(5)
    a = rng.exponential(size=60)
    b = a * 0.8 + rng.normal(0, 0.1, 60)   # paired with a
    ours = stats.bootstrap([np.stack([a, b], 1)], lambda m: m[:, 0] - m[:, 1], n_resamples=4000, seed=1)
    theirs = sps.bootstrap((a, b), lambda u, v, axis=-1: u.mean(axis) - v.mean(axis), paired=True,
                           vectorized=True, n_resamples=4000, method="percentile", random_state=1).confidence_interval
    assert ours["estimate"] == pytest.approx(a.mean() - b.mean())
    width = theirs.high - theirs.low
    assert ours["low"] == pytest.approx(theirs.low, abs=0.05 * width)
    assert ours["high"] == pytest.approx(theirs.high, abs=0.05 * width)
    # pairing matters: the unpaired interval of the same difference is several times wider
    unpaired = sps.bootstrap((a, b), lambda u, v, axis=-1: u.mean(axis) - v.mean(axis), vectorized=True,
                             n_resamples=2000, method="percentile", random_state=1).confidence_interval
    assert unpaired.high - unpaired.low > 3 * width


def test_seeds_widen_the_interval():
    rng = np.random.default_rng(6)
    # three trained seeds whose effect differs (1.0, 1.3, 0.7) beyond the within-seed noise
    seeds = [np.stack([rng.normal(0, 0.1, 50) + shift, np.zeros(50)], 1) for shift in (1.0, 1.3, 0.7)]
    diff = lambda m: m[:, 0] - m[:, 1]  # noqa: E731
    pooled = stats.bootstrap([np.concatenate(seeds)], diff, seed=0)
    hierarchical = stats.bootstrap(seeds, diff, seed=0)
    assert hierarchical["estimate"] == pytest.approx(pooled["estimate"])
    assert hierarchical["high"] - hierarchical["low"] > 5 * (pooled["high"] - pooled["low"])
    assert hierarchical["n_seeds"] == 3 and hierarchical["n_examples"] == 150


def test_verdicts_are_decided_by_the_interval():
    assert stats.verdict_above(0.1, 0.5) == "reproduced"
    assert stats.verdict_above(-0.5, -0.1) == "not reproduced"
    assert stats.verdict_above(-0.1, 0.5) == "inconclusive"        # the interval holds the threshold
    assert stats.verdict_below(0.2, 0.9, threshold=1.0) == "reproduced"
    assert stats.verdict_within(-0.6, -0.4, -0.7, -0.3) == "reproduced"
    assert stats.verdict_within(-0.2, -0.1, -0.7, -0.3) == "not reproduced"
    assert stats.verdict_within(-0.5, -0.2, -0.7, -0.3) == "inconclusive"
    assert stats.verdict_above(math.nan, 1.0) == "inconclusive"
    assert stats.combine(["reproduced", "reproduced"]) == "reproduced"
    assert stats.combine(["reproduced", "inconclusive"]) == "inconclusive"
    assert stats.combine(["inconclusive", "not reproduced"]) == "not reproduced"
