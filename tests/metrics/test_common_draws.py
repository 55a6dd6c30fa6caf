"""Common random numbers: robustness metrics measure the explanation, not its Monte Carlo error."""

import pytest
import torch

from rxlit.explain import method_info
from rxlit.metrics import local_lipschitz, max_sensitivity

SAMPLED = {"lime": {"n_samples": 50, "n_features": 16}, "kernel_shap": {"n_samples": 50, "n_features": 16},
           "smoothgrad": {"sigma": 0.1, "n_samples": 10}}


def scale_ratio(model, x, y, method, options, draws):
    """Mean local Lipschitz at neighbour scale 0.003 over that at 0.03 (same seed)."""
    kw = dict(n_samples=10, seed=0, draws=draws, method_options=options)
    return (local_lipschitz(model, x, y, method, sigma=0.003, **kw).mean()
            / local_lipschitz(model, x, y, method, sigma=0.03, **kw).mean()).item()


def test_shrinking_the_neighbours_tenfold_changes_the_explanation_little_and_the_monte_carlo_error_tenfold(
        digits_mlp):
    model, x, y = digits_mlp
    x, y = x[:16], y[:16]
    for method, options in SAMPLED.items():
        common = scale_ratio(model, x, y, method, options, "common")
        independent = scale_ratio(model, x, y, method, options, "independent")
        # LIME and KernelSHAP are Lipschitz in x once their coalitions are fixed: the estimate does not
        # move. SmoothGrad averages gradients of a ReLU network, piecewise constant: like Grad's own
        # estimate (x2 here) its maximum over neighbours grows a little as they come closer.
        assert common < (1.1 if method != "smoothgrad" else 2.5), (method, common)
        # fresh draws: Monte Carlo error / ||x - x_i|| grows like 1 / scale
        assert independent > (9 if method != "smoothgrad" else 6), (method, independent)
    grad = scale_ratio(model, x, y, "grad", {}, "common")
    assert grad == pytest.approx(scale_ratio(model, x, y, "grad", {}, "independent"))  # deterministic: no change


def test_sensitivity_of_a_sampled_method_uses_common_draws_by_default(digits_mlp):
    model, x, y = digits_mlp
    x, y = x[:8], y[:8]
    options = {"n_samples": 30, "n_features": 16}
    default = max_sensitivity(model, x, y, "lime", n_samples=6, radius=0.01, seed=1, method_options=options)
    common = max_sensitivity(model, x, y, "lime", n_samples=6, radius=0.01, seed=1, method_options=options,
                             draws="common")
    fresh = max_sensitivity(model, x, y, "lime", n_samples=6, radius=0.01, seed=1, method_options=options,
                            draws="independent")
    torch.testing.assert_close(default, common, rtol=0, atol=0)
    assert (common < fresh).all()


def test_methods_declare_randomness_and_units():
    assert (method_info("grad").stochastic, method_info("grad").units) == \
        (method_info("guided_backprop").stochastic, method_info("guided_backprop").units)
    assert method_info("grad").needs is None and "ReLU" in method_info("guided_backprop").needs
    assert not method_info("grad").stochastic and method_info("grad").units == "slope"
    for name in ("smoothgrad", "unigrad", "clime", "noisy_baseline"):
        assert method_info(name).stochastic and method_info(name).units == "slope", name
    for name in ("lime", "kernel_shap"):
        assert method_info(name).stochastic and method_info(name).units == "attribution", name
    for name in ("grad_x_input", "integrated_gradients", "occlusion"):
        assert not method_info(name).stochastic and method_info(name).units == "attribution", name
    # the smoothed model keeps its base method's units
    assert method_info("smoothed", {"base": "lime"}).units == "attribution"
    assert method_info("smoothed").units == "slope" and method_info("smoothed").stochastic
    # an undeclared callable: stochastic when it takes a generator, units unknown
    assert method_info(lambda m, x, t, generator=None: x).stochastic
    assert method_info(lambda m, x, t: x).units is None
