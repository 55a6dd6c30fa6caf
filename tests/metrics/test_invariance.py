"""Keyed randomness: a metric value depends on (seed, example index, epoch) only -- not on the
batch composition, the chunk size, or (by extension) the number of DDP ranks."""

import pytest
import torch
from metric_nets import smoothgrad_local

from rxlit.metrics import (
    adversarial_sensitivity,
    avg_sensitivity,
    faithfulness_correlation,
    infidelity,
    local_lipschitz,
    max_sensitivity,
    model_local_lipschitz,
)
from rxlit.rng import ExampleRNG

CASES = {
    "lipschitz_grad": lambda m, x, y, **kw: local_lipschitz(m, x, y, "grad", n_samples=12, **kw),
    "lipschitz_smoothgrad": lambda m, x, y, **kw: local_lipschitz(m, x, y, smoothgrad_local, n_samples=6,
                                                                  **kw),
    "max_sensitivity": lambda m, x, y, **kw: max_sensitivity(m, x, y, "grad", n_samples=12, radius=0.1, **kw),
    "infidelity": lambda m, x, y, **kw: infidelity(m, x, y, n_samples=12, **kw),
    # rxlit's own stochastic methods inside a metric: keyed end to end
    "lipschitz_lime": lambda m, x, y, **kw: local_lipschitz(m, x, y, "lime", n_samples=3,
                                                            method_options={"n_samples": 20, "n_features": 4}, **kw),
    "sensitivity_smoothgrad": lambda m, x, y, **kw: max_sensitivity(m, x, y, "smoothgrad", n_samples=4, radius=0.1,
                                                                    method_options={"sigma": 0.05, "n_samples": 5}, **kw),
    "faithfulness_correlation": lambda m, x, y, **kw: faithfulness_correlation(
        m, x, y, n_samples=12, method="smoothgrad", method_options={"n_samples": 4}, **kw),
    "model_lipschitz": lambda m, x, y, **kw: model_local_lipschitz(m, x, y, n_samples=12, **kw),
    "adversarial": lambda m, x, y, **kw: adversarial_sensitivity(m, x, y, "grad", n_samples=3, steps=2, radius=0.1,
                                                                 **kw),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_batch_of_one_equals_batch_of_32(trained, case):
    model, x, y = trained
    metric = CASES[case]
    index = torch.arange(100, 132)
    batched = metric(model, x, y, seed=7, index=index, epoch=2)
    # examples one at a time, in reverse order: each keyed by its own index
    alone = torch.cat([metric(model, x[i:i + 1], y[i:i + 1], seed=7, index=index[i:i + 1], epoch=2)
                       for i in reversed(range(32))]).flip(0)
    torch.testing.assert_close(batched, alone, rtol=1e-10, atol=1e-12)
    # a different epoch or seed gives different noise
    assert not torch.allclose(batched, metric(model, x, y, seed=7, index=index, epoch=3))


@pytest.mark.parametrize("case", sorted(CASES))
def test_chunk_size_does_not_change_the_value(trained, case):
    model, x, y = trained
    metric = CASES[case]
    x, y = x[:6], y[:6]
    one = metric(model, x, y, generator=ExampleRNG(3, torch.arange(6)), chunk_size=1)
    big = metric(model, x, y, generator=ExampleRNG(3, torch.arange(6)), chunk_size=1000)
    odd = metric(model, x, y, generator=ExampleRNG(3, torch.arange(6)), chunk_size=7)
    torch.testing.assert_close(one, big, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(odd, big, rtol=1e-10, atol=1e-12)


def test_same_seed_same_numbers_and_torch_generator_is_deterministic(trained):
    model, x, y = trained
    a = local_lipschitz(model, x, y, smoothgrad_local, n_samples=5, seed=1)
    b = local_lipschitz(model, x, y, smoothgrad_local, n_samples=5, seed=1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.testing.assert_close(avg_sensitivity(model, x, y, generator=g1, n_samples=5),
                               avg_sensitivity(model, x, y, generator=g2, n_samples=5), rtol=0, atol=0)


def test_common_draws_remove_the_monte_carlo_error_of_a_stochastic_method(trained):
    model, x, y = trained
    # default: the same inner noise at x and its neighbours, so SmoothGrad's change is that of one
    # fixed average of gradients; independent draws add the Monte Carlo error of both points
    common = local_lipschitz(model, x, y, smoothgrad_local, n_samples=5, seed=0, sigma=0.01)
    fresh = local_lipschitz(model, x, y, smoothgrad_local, n_samples=5, seed=0, sigma=0.01, draws="independent")
    assert common.mean() < 0.5 * fresh.mean()
    # a torch.Generator gets keys drawn from it, so the draws can be replayed at the neighbours
    g = [torch.Generator().manual_seed(4) for _ in range(2)]
    a = local_lipschitz(model, x, y, smoothgrad_local, n_samples=5, sigma=0.01, generator=g[0])
    torch.testing.assert_close(a, local_lipschitz(model, x, y, smoothgrad_local, n_samples=5, sigma=0.01,
                                                  generator=g[1]), rtol=0, atol=0)
    assert a.mean() < 0.5 * fresh.mean()
    with pytest.raises(ValueError, match="robustness plus Monte Carlo error"):
        local_lipschitz(model, x, y, smoothgrad_local, n_samples=5, draws="fresh")
