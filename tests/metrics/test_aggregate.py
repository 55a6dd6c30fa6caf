"""PerExampleMetric: mean and confidence interval over examples, across batches, epochs and ranks."""

import pytest
import torch
from gloo_pair import run_on_two_ranks

from rxlit.metrics import PerExampleMetric, summarize


def test_summarize_matches_the_t_interval():
    values = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0], dtype=torch.float64)
    out = summarize(values)
    mean, std = values.mean().item(), values.std().item()
    half = 2.7764451051977987 * std / 5 ** 0.5  # t_{0.975, 4}
    assert out["n"] == 5 and abs(out["mean"] - mean) < 1e-12 and abs(out["std"] - std) < 1e-12
    assert abs(out["ci_low"] - (mean - half)) < 1e-9 and abs(out["ci_high"] - (mean + half)) < 1e-9
    with_nan = summarize(torch.tensor([1.0, float("nan"), 3.0]))
    assert with_nan["n"] == 2 and with_nan["n_dropped"] == 1 and with_nan["mean"] == 2.0


def test_two_ranks_merged_equal_one_process_and_padding_is_deduplicated():
    g = torch.Generator().manual_seed(0)
    values = torch.randn(100, generator=g, dtype=torch.float64)
    single = PerExampleMetric()
    for rows in torch.arange(100).split(16):  # batches
        single.update(values[rows], rows)
    # DistributedSampler(100 examples, 2 ranks, batch 16): interleaved, padded by repeating index 0, 1
    padded = torch.cat([torch.arange(100), torch.arange(2)])
    ranks = [PerExampleMetric(), PerExampleMetric()]
    for r, metric in enumerate(ranks):
        for rows in padded[r::2].split(16):
            metric.update(values[rows], rows)
    ranks[0].merge_state(ranks[1])
    merged, expected = ranks[0].compute(), single.compute()
    assert merged["n"] == 100
    for key in ("mean", "ci_low", "ci_high", "std"):
        torch.testing.assert_close(merged[key], expected[key])
    torch.testing.assert_close(merged["mean"], values.mean())


def test_reset_between_epochs_and_unindexed_values_all_count():
    metric = PerExampleMetric()
    metric.update(torch.ones(4))
    metric.update(torch.ones(4))
    assert metric.compute()["n"] == 8  # no index: nothing to deduplicate
    metric.reset()
    metric.update(torch.tensor([2.0, 4.0]), torch.tensor([5, 6]))
    assert metric.compute()["mean"] == 3.0 and metric.compute()["n"] == 2


def test_confidence_interval_covers_the_true_mean_about_95_percent_of_the_time():
    g = torch.Generator().manual_seed(1)
    draws = torch.empty(400, 30, dtype=torch.float64).exponential_(1.0, generator=g)  # true mean 1
    covered = 0
    for row in draws:  # 400 independent experiments
        out = summarize(row)
        covered += out["ci_low"] <= 1.0 <= out["ci_high"]
    assert 0.90 <= covered / 400 <= 0.99


def _padded_sync(rank: int, world: int) -> dict:
    values = torch.arange(10, dtype=torch.float64) ** 2
    index = torch.cat([torch.arange(10), torch.tensor([0, 1])])[rank::world]  # sampler padding: 6 + 6
    metric = PerExampleMetric()
    metric.update(values[index], index)
    return {k: float(v) for k, v in metric.compute().items()}


@pytest.mark.ddp
def test_real_two_process_gloo_sync():
    out = run_on_two_ranks(_padded_sync)
    expected = summarize(torch.arange(10, dtype=torch.float64) ** 2)
    assert out["n"] == 10
    assert abs(out["mean"] - expected["mean"]) < 1e-12 and abs(out["ci_high"] - expected["ci_high"]) < 1e-9


def _sharded_lipschitz(rank: int, world: int, model, x, y) -> dict:
    from rxlit.metrics import local_lipschitz

    index = torch.arange(len(x))[rank::world]  # DistributedSampler's interleaved shard
    values = local_lipschitz(model, x[index], y[index], "grad", n_samples=8, seed=5, index=index, epoch=1)
    metric = PerExampleMetric()
    metric.update(values, index)
    return {k: float(v) for k, v in metric.compute().items()}


@pytest.mark.ddp
def test_a_metric_computed_on_two_gloo_ranks_equals_one_process(trained):
    # keyed noise + index-aware aggregation: the per-example values, hence the summary, do not
    # depend on how the examples are split across ranks
    from rxlit.metrics import local_lipschitz

    model, x, y = trained
    x, y = x[:10], y[:10]
    out = run_on_two_ranks(_sharded_lipschitz, model, x, y)
    single = summarize(local_lipschitz(model, x, y, "grad", n_samples=8, seed=5, index=torch.arange(10), epoch=1))
    assert out["n"] == 10
    for key in ("mean", "ci_low", "ci_high"):
        assert abs(out[key] - single[key]) < 1e-12 * max(1.0, abs(single[key]))


def test_values_of_different_epochs_all_count_and_padding_still_counts_once():
    metric = PerExampleMetric()
    metric.update(torch.tensor([1.0, 2.0, 3.0, 1.0]), torch.tensor([0, 1, 2, 0]), epoch=0)  # index 0 padded
    metric.update(torch.tensor([5.0, 6.0, 7.0]), torch.tensor([0, 1, 2]), epoch=1)
    out = metric.compute()
    assert out["n"] == 6 and out["mean"] == (1 + 2 + 3 + 5 + 6 + 7) / 6
    values, indices = metric.examples()
    assert values.tolist() == [1.0, 2.0, 3.0, 5.0, 6.0, 7.0] and indices.tolist() == [0, 1, 2, 0, 1, 2]
