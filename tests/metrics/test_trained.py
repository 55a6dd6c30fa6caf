"""Statements of the papers checked on a small trained ReLU network."""

import math

import pytest
import torch
from torch import nn

from rxlit.metrics import (
    METRICS,
    adversarial_sensitivity,
    bound_ratio,
    compute_metric,
    gradient_norm,
    local_lipschitz,
    max_sensitivity,
    robust_accuracy,
    theorem41_bound,
)


def test_smoothgrad_lipschitz_stays_below_the_theorem41_bound(trained, smoothgrad):
    model, x, y = trained
    sigma = 0.05
    # L: the largest gradient norm seen around the data (a lower estimate of the true constant,
    # which only makes the check stricter)
    g = torch.Generator().manual_seed(0)
    around = (x.unsqueeze(1) + 3 * sigma * torch.randn(32, 16, *x.shape[1:], generator=g,
                                                       dtype=x.dtype)).flatten(0, 1)
    L = gradient_norm(model, around, y.repeat_interleave(16)).max()
    # the neighbourhood's sigma (0.03) and SmoothGrad's sigma clash by name: pass the latter as a dict
    empirical = local_lipschitz(model, x, y, smoothgrad, n_samples=20, seed=0, sigma=0.03,
                                method_options={"sigma": sigma})
    bound = theorem41_bound("smoothgrad", L=L, sigma=sigma)
    assert (bound_ratio(empirical, bound) < 1).all()


def test_smoothing_lowers_max_sensitivity(trained, smoothgrad):
    # Yeh et al., Theorem 4.1: smoothing an explanation does not increase its sensitivity
    model, x, y = trained
    raw = max_sensitivity(model, x, y, "grad", n_samples=20, radius=0.1, seed=0)
    smooth = max_sensitivity(model, x, y, smoothgrad, n_samples=20, radius=0.1, seed=0,
                             method_options={"sigma": 0.1})
    assert smooth.mean() < raw.mean()


def test_adversarial_sensitivity_is_at_least_the_monte_carlo_maximum(trained):
    model, x, y = trained
    x, y = x[:12], y[:12]
    mc = max_sensitivity(model, x, y, "grad", n_samples=20, radius=0.1, seed=0)
    adv = adversarial_sensitivity(model, x, y, "grad", n_samples=20, radius=0.1, steps=10, seed=0)
    assert (adv >= mc - 1e-12).all()
    assert adv.mean() > mc.mean()  # the search finds more than sampling alone


def test_adversarial_sensitivity_of_a_method_without_a_closed_form_gradient(trained, smoothgrad):
    model, x, y = trained
    x, y = x[:4], y[:4]
    kw = dict(n_samples=8, radius=0.1, seed=1, method_options={"sigma": 0.1})
    mc = max_sensitivity(model, x, y, smoothgrad, **kw)
    # SmoothGrad is searched with SPSA directions (no closed-form gradient); the Monte Carlo
    # stage draws the same keyed samples as max_sensitivity, so it starts from the same maximum
    adv = adversarial_sensitivity(model, x, y, smoothgrad, steps=3, n_directions=4, **kw)
    assert (adv >= mc - 1e-12).all()


def test_theorem41_bound_values():
    assert theorem41_bound("grad", H=3.0) == 3.0
    assert theorem41_bound("grad_x_input", L=2.0, H=3.0, beta=4.0) == 14.0
    assert theorem41_bound("integrated_gradients", L=2.0, H=3.0, beta=4.0) == 8.0
    assert math.isclose(theorem41_bound("smoothgrad", L=2.0, sigma=0.5), math.sqrt(2 / math.pi) * 4.0)
    assert math.isclose(theorem41_bound("kernel_shap", L=2.0, d=16), 16.0)
    assert math.isclose(theorem41_bound("lime", L=2.0, d=15, lam=1.0), 2 * 4 * 2 / 5)
    assert bound_ratio(1.0, 4.0) == 0.25
    with pytest.raises(ValueError, match="needs"):
        theorem41_bound("grad_x_input", L=1.0)
    with pytest.raises(ValueError, match="valid"):
        theorem41_bound("deeplift", L=1.0)


def test_robust_accuracy_restores_training_mode_and_is_below_clean(trained):
    model, x, y = trained
    model.train()
    model[1].eval()  # a mixed state must survive the attack
    clean = compute_metric("clean_accuracy", model, x, y)
    robust = robust_accuracy(model, x, y, eps=0.3, step=0.05, steps=10, seed=0)
    assert model.training and not model[1].training and model[3].training
    model.eval()
    assert robust.mean() < clean.mean() and robust.shape == (32,)
    tiny = robust_accuracy(model, x, y, eps=1e-6, steps=2, seed=0)
    torch.testing.assert_close(tiny, clean)


def test_registry_calls_every_metric_uniformly(trained):
    model, x, y = trained
    x, y = x[:3], y[:3]
    options = {"local_lipschitz": dict(n_samples=4), "max_sensitivity": dict(n_samples=4),
               "avg_sensitivity": dict(n_samples=4), "adversarial_sensitivity": dict(n_samples=4, steps=1),
               "infidelity": dict(n_samples=4), "faithfulness_correlation": dict(n_samples=8),
               "model_local_lipschitz": dict(n_samples=4), "model_smoothness": dict(n_samples=4),
               "robust_accuracy": dict(steps=1)}
    for name in METRICS.names():
        values = compute_metric(name, model, x, y, method="grad", seed=0, **options.get(name, {}))
        assert values.shape == (3,), name
    with pytest.raises(ValueError, match="valid names"):
        compute_metric("fidelity", model, x, y)


def test_surrogate_leaves_the_model_untouched(trained):
    from rxlit.metrics.robustness import smooth_surrogate

    model, _, _ = trained
    surrogate = smooth_surrogate(model, beta=5.0)
    assert any(isinstance(m, nn.Softplus) for m in surrogate.modules())
    assert not any(isinstance(m, nn.Softplus) for m in model.modules())
