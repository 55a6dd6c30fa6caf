"""The studies' statistics against closed forms and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from rxlit.analysis import stats


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
