"""Parity with Captum's sensitivity_max / infidelity and Quantus' LocalLipschitzEstimate."""

import numpy as np
import pytest
import torch
from metric_nets import Quadratic

from rxlit.explain.core import explain
from rxlit.metrics import infidelity, local_lipschitz, max_sensitivity
from rxlit.metrics.perturbations import FlatStream
from rxlit.rng import ExampleRNG

captum_metrics = pytest.importorskip("captum.metrics")
quantus = pytest.importorskip("quantus")

B, N = 5, 20


def grad_of(model):
    def attribute(inputs, target=None):  # Captum passes and expects tuples
        if isinstance(inputs, tuple):
            return (explain(model, inputs[0], target, "grad"),)
        return explain(model, inputs, target, "grad")
    return attribute


def our_noise(kind, shape, seed=0):
    """The exact noise the metric draws first from ExampleRNG(seed, 0..B-1): rows e * N + j."""
    stream = FlatStream(ExampleRNG(seed, torch.arange(B)), B, N)
    draw = stream.normal if kind == "normal" else stream.uniform
    return draw(slice(0, B * N), shape, dtype=torch.float64)


def test_max_sensitivity_equals_captum_on_the_same_perturbations(trained):
    model, x, y = trained
    x, y = x[:B], y[:B]
    radius = 0.05
    delta = radius * (2 * our_noise("uniform", x.shape[1:]) - 1)
    ours = max_sensitivity(model, x, y, n_samples=N, radius=radius, seed=0)
    theirs = captum_metrics.sensitivity_max(grad_of(model), x, perturb_func=lambda inp, r: inp + delta,
                                            perturb_radius=radius, n_perturb_samples=N, target=y)
    torch.testing.assert_close(ours, theirs.to(ours.dtype))


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("kind", ["noisy_baseline", "gaussian"])
def test_infidelity_equals_captum_on_the_same_perturbations(trained, normalize, kind):
    model, x, y = trained
    x, y = x[:B], y[:B]
    phi = explain(model, x, y, "grad")
    z = our_noise("normal", x.shape[1:])
    x_rep = x.repeat_interleave(N, 0)
    pert = x_rep - (-0.2 * z).clamp(0, 1) if kind == "noisy_baseline" else 0.03 * z
    ours = infidelity(model, x, y, phi, perturbation=kind, n_samples=N, normalize=normalize, seed=0)
    theirs = captum_metrics.infidelity(model, lambda inp: (pert, inp - pert), x, phi, target=y,
                                       n_perturb_samples=N, normalize=normalize)
    torch.testing.assert_close(ours, theirs.to(ours.dtype))
    # a Captum-style perturbation callable plugged into ours gives the same numbers again
    injected = infidelity(model, x, y, phi, perturbation=lambda inp: (pert, inp - pert), n_samples=N,
                          normalize=normalize, chunk_size=B * N)
    torch.testing.assert_close(injected, ours)


def test_sensitivity_callable_noise_is_captum_convention(trained):
    model, x, y = trained
    x, y = x[:B], y[:B]
    delta = 0.02 * (2 * torch.rand(B * N, *x.shape[1:], dtype=torch.float64) - 1)
    ours = max_sensitivity(model, x, y, n_samples=N, noise=lambda rows: rows + delta, chunk_size=B * N)
    theirs = captum_metrics.sensitivity_max(grad_of(model), x, perturb_func=lambda inp, r: inp + delta,
                                            n_perturb_samples=N, target=y)
    torch.testing.assert_close(ours, theirs.to(ours.dtype))


def _quantus_lipschitz(model, x, y, sigma, n, perturb_func=None):
    def explain_func(model, inputs, targets, **_):
        inp = torch.as_tensor(inputs, dtype=torch.float64)
        return explain(model, inp, torch.as_tensor(targets), "grad").numpy()

    kwargs = {} if perturb_func is None else {"perturb_func": perturb_func}
    metric = quantus.LocalLipschitzEstimate(nr_samples=n, perturb_std=sigma, normalise=False, abs=False,
                                            disable_warnings=True, **kwargs)
    a = explain_func(model, x.numpy(), y.numpy())
    scores = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a, explain_func=explain_func,
                    channel_first=True, device="cpu", batch_size=len(x))
    return torch.as_tensor(np.asarray(scores), dtype=torch.float64)


def test_local_lipschitz_equals_quantus_with_the_same_noise(trained):
    model, x, y = trained
    x, y = x[:B], y[:B]
    sigma = 0.03
    z = sigma * our_noise("normal", x.shape[1:]).view(B, N, -1).numpy()
    step = iter(range(N))

    def perturb_func(arr, indices, **_):  # Quantus calls it once per sample, on the whole batch
        return arr + z[:, next(step)]

    theirs = _quantus_lipschitz(model, x, y, sigma, N, perturb_func)
    ours = local_lipschitz(model, x, y, n_samples=N, sigma=sigma, seed=0)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-9)


def test_local_lipschitz_agrees_with_quantus_own_noise_within_monte_carlo_error():
    # On a quadratic the ratio is ||A u|| for a random direction u: both estimators are maxima of
    # i.i.d. draws of the same law, so their means over examples agree up to Monte Carlo error.
    g = torch.Generator().manual_seed(2)
    M = torch.randn(16, 16, generator=g, dtype=torch.float64)
    model = Quadratic(M @ M.T / 16)
    x = torch.rand(40, 1, 4, 4, generator=g, dtype=torch.float64)
    y = torch.zeros(40, dtype=torch.long)
    np.random.seed(0)
    theirs = _quantus_lipschitz(model, x, y, 0.03, 30)
    ours = local_lipschitz(model, x, y, n_samples=30, sigma=0.03, seed=0)
    stderr = ((ours.var() + theirs.var()) / 40).sqrt()
    assert abs(ours.mean() - theirs.mean()) < 4 * stderr


def test_unnormalised_max_sensitivity_is_captums_times_the_explanation_norm(trained):
    # Captum's sensitivity_max always divides by ||phi(x)||; normalize=False drops that division
    model, x, y = trained
    x, y = x[:B], y[:B]
    radius = 0.05
    delta = radius * (2 * our_noise("uniform", x.shape[1:]) - 1)
    ours = max_sensitivity(model, x, y, n_samples=N, radius=radius, normalize=False, seed=0)
    theirs = captum_metrics.sensitivity_max(grad_of(model), x, perturb_func=lambda inp, r: inp + delta,
                                            perturb_radius=radius, n_perturb_samples=N, target=y)
    norm = explain(model, x, y, "grad").flatten(1).norm(dim=1)
    torch.testing.assert_close(ours, theirs.to(ours.dtype) * norm)


def test_correlations_equal_scipy_with_ties():
    from scipy import stats

    from rxlit.metrics.faithfulness import pearson, spearman

    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (4, 30), generator=g).to(torch.float64)  # many ties
    b = a + torch.randn(4, 30, generator=g, dtype=torch.float64)
    for row in range(4):
        assert abs(spearman(a, b)[row].item() - stats.spearmanr(a[row], b[row]).statistic) < 1e-12
        assert abs(pearson(a, b)[row].item() - stats.pearsonr(a[row], b[row]).statistic) < 1e-12
    assert torch.isnan(pearson(torch.ones(1, 5, dtype=torch.float64), b[:1, :5])).all()  # undefined
