"""Certified bounds: the model's global Lipschitz constant and the explanation bounds built on it."""

import pytest
import torch
from metric_nets import digits_model
from torch import nn

from rxlit.explain import explain
from rxlit.metrics import local_lipschitz, model_local_lipschitz
from rxlit.metrics.certified import certified_bound, conv_operator_norm, global_lipschitz
from rxlit.metrics.perturbations import neighbourhood
from rxlit.metrics.robustness import method_generator, neighbour_distances
from rxlit.rng import ExampleRNG

METHODS = {"smoothgrad": {"sigma": 0.05, "n_samples": 8}, "clime": {"sigma": 0.05, "n_samples": 80},
           "lime": {"n_samples": 40, "n_features": 16, "kernel": "constant"},
           "kernel_shap": {"n_samples": 40, "n_features": 16}}


def dense(layer: nn.Module, shape) -> torch.Tensor:
    """The layer's matrix, column j = layer(e_j) (bias removed)."""
    basis = torch.eye(int(torch.tensor(shape).prod()), dtype=torch.float64).view(-1, *shape)
    with torch.no_grad():
        return (layer(basis) - layer(torch.zeros(1, *shape, dtype=torch.float64))).flatten(1).T


def test_conv_power_iteration_is_the_dense_operators_spectral_norm():
    torch.manual_seed(0)
    for conv, shape in ((nn.Conv2d(1, 32, 5, padding=2), (1, 8, 8)), (nn.Conv2d(32, 64, 5, padding=2), (32, 4, 4)),
                        (nn.Conv2d(3, 8, 3, stride=2, padding=1), (3, 9, 9))):
        conv = conv.double()
        exact = torch.linalg.matrix_norm(dense(conv, shape), ord=2)
        assert conv_operator_norm(conv, shape) == pytest.approx(float(exact), rel=1e-5)
        # on another input size the same kernel is another operator (zero padding): norms differ
        assert conv_operator_norm(conv, (shape[0], 12, 12)) != pytest.approx(float(exact), rel=1e-5)


def test_global_lipschitz_of_linear_and_two_layer_networks():
    linear = nn.Sequential(nn.Flatten(), nn.Linear(64, 1)).double()
    torch.testing.assert_close(global_lipschitz(linear, (1, 8, 8)), linear[1].weight.detach().norm().view(1))
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 20), nn.ReLU(), nn.Linear(20, 3)).double()
    first = torch.linalg.matrix_norm(net[1].weight, ord=2)
    torch.testing.assert_close(global_lipschitz(net, (1, 8, 8)), first * net[3].weight.norm(dim=1).detach())
    with pytest.raises(ValueError, match="no certified Lipschitz constant for layer LSTM"):
        global_lipschitz(nn.Sequential(nn.LSTM(4, 4)), (4,))


@pytest.fixture(scope="module", params=["mlp", "small_cnn"])
def digits(request):
    model, x, y = digits_model(request.param, seed=1, steps=30 if request.param == "mlp" else 10)
    return model, x[:16], y[:16]


def test_empirical_is_under_certified_on_every_example(digits):
    model, x, y = digits
    L = global_lipschitz(model, (1, 8, 8))[y]
    index = torch.arange(100, 116)
    assert (model_local_lipschitz(model, x, y, n_samples=20, seed=0, index=index) <= L).all()
    for method, options in METHODS.items():
        empirical = local_lipschitz(model, x, y, method, n_samples=8, seed=0, index=index, method_options=options)
        bound = certified_bound(method, options, x, L, method_generator(0, index))
        assert (empirical <= bound).all(), (method, (empirical / bound).max())
    assert certified_bound("lime", {}, x, L) is None          # exponential kernel of the distance to x
    assert certified_bound("grad", {}, x, L) is None          # needs H: unbounded for ReLU networks


def test_method_generator_replays_the_draws_the_metric_used(digits_mlp):
    model, x, y = digits_mlp
    x, y, index = x[:4], y[:4], torch.arange(7, 11)
    for method, options in METHODS.items():
        inside = neighbour_distances(model, x, y, method, 2, neighbourhood("gaussian", 0.03),
                                     ExampleRNG(3, index), None, options).phi
        replayed = explain(model, x, y, method, generator=method_generator(3, index), **options)
        torch.testing.assert_close(inside, replayed, rtol=0, atol=0)
