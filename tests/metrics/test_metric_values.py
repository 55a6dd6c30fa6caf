"""Closed-form values of the sensitivity metrics and bounds, and the adversarial search and
AutoAttack on a small trained (standard, not robust) network."""

import math

import pytest
import torch
from metric_nets import Quadratic, blobs, mlp
from torch import nn

from rxlit.metrics import (
    adversarial_sensitivity,
    avg_sensitivity,
    bound_ratio,
    clean_accuracy,
    local_lipschitz,
    max_sensitivity,
    robust_accuracy,
    theorem41_bound,
)


def test_avg_and_max_sensitivity_of_grad_on_an_isotropic_quadratic():
    # f = a ||x||^2 / 2: grad f(x + delta) - grad f(x) = a delta with delta uniform in [-r, r]^d, so
    # the average change is a E||delta||_2 ~= a r sqrt(d / 3) (relative spread 5.6% at d = 64) and the
    # maximum is below the corner a r sqrt(d).
    a, r, d = 2.0, 0.05, 64
    model = Quadratic(a * torch.eye(d, dtype=torch.float64))
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    avg = avg_sensitivity(model, x, 0, "grad", n_samples=2000, radius=r, normalize=False, seed=0)
    torch.testing.assert_close(avg, torch.full((3,), a * r * math.sqrt(d / 3), dtype=torch.float64), rtol=0.01, atol=0)
    mx = max_sensitivity(model, x, 0, "grad", n_samples=2000, radius=r, normalize=False, seed=0)
    assert (mx > avg).all() and (mx < a * r * math.sqrt(d)).all()
    # normalisation divides by ||phi(x)|| = a ||x||
    normalized = avg_sensitivity(model, x, 0, "grad", n_samples=2000, radius=r, seed=0)
    torch.testing.assert_close(normalized, avg / (a * x.flatten(1).norm(dim=1)))


def test_grad_x_input_and_integrated_gradients_stay_below_their_theorem41_bounds():
    # f = x^T A x / 2 on the ball ||x|| <= beta: H = ||A||_2 and L = max ||A x|| <= ||A||_2 beta.
    # IG with a zero baseline is exactly GI / 2 here (linear integrand, trapezoid rule).
    g = torch.Generator().manual_seed(3)
    M = torch.randn(16, 16, generator=g, dtype=torch.float64)
    A = M @ M.T / 16
    model = Quadratic(A)
    x = torch.rand(5, 1, 4, 4, generator=g, dtype=torch.float64)
    sigma = 0.03
    beta = x.flatten(1).norm(dim=1).max().item() + 8 * sigma * 4  # covers every neighbour (8 std of ||z||)
    H = torch.linalg.matrix_norm(A, ord=2).item()
    L = H * beta
    gi = local_lipschitz(model, x, 0, "grad_x_input", n_samples=300, sigma=sigma, seed=0)
    ig = local_lipschitz(model, x, 0, "integrated_gradients", n_samples=300, sigma=sigma, seed=0)
    torch.testing.assert_close(ig, gi / 2)
    gi_ratio = bound_ratio(gi, theorem41_bound("grad_x_input", L=L, H=H, beta=beta))
    ig_ratio = bound_ratio(ig, theorem41_bound("integrated_gradients", L=L, H=H, beta=beta))
    assert (gi_ratio < 1).all() and (ig_ratio < 1).all()
    assert (gi_ratio > 0.05).all()  # the bound is not vacuous here: within a factor 20


def test_adversarial_search_beats_a_much_larger_independent_monte_carlo_sample(trained):
    # With only 4 random starts and 10 ascent steps, the search reaches explanation changes that
    # 400 independent uniform samples (different noise) do not.
    model, x, y = trained
    x, y = x[:12], y[:12]
    mc = max_sensitivity(model, x, y, "grad", n_samples=400, radius=0.1, seed=123)
    adv = adversarial_sensitivity(model, x, y, "grad", n_samples=4, radius=0.1, steps=10, seed=0)
    # measured: 9 of 12 examples, +36% on average (margins leave room for platform differences)
    assert (adv >= mc).float().mean() >= 0.5
    assert adv.mean() > 1.2 * mc.mean()


def four_class_net():
    """A standard (non-robust) 64-32-32-4 ReLU MLP trained on four-band blobs: AutoAttack's
    targeted DLR loss needs at least 4 classes, and float32 (torchattacks' Square and FAB make float inputs)."""
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    model = mlp(classes=4).float()
    x, y = blobs(256, g, classes=4)
    x = x.float()
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    x_test, y_test = blobs(8, g, classes=4)
    return model.eval(), x_test.float(), y_test


@pytest.mark.slow
def test_autoattack_is_at_least_as_strong_as_pgd():
    model, x, y = four_class_net()
    eps = 0.15
    clean = clean_accuracy(model, x, y)
    pgd = robust_accuracy(model, x, y, attack="pgd", eps=eps, step=eps / 4, steps=10, seed=0)
    auto = robust_accuracy(model, x, y, attack="autoattack", eps=eps, seed=0)
    assert clean.sum() >= 7  # a working classifier
    assert auto.sum() <= pgd.sum() <= clean.sum()
    assert auto.sum() < clean.sum()  # the attack does something at this radius
    assert (auto <= clean).all()  # a misclassified example stays misclassified
    torch.testing.assert_close(robust_accuracy(model, x, y, attack="autoattack", eps=1e-6, seed=0), clean)


def test_robust_accuracy_errors_name_the_fix(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="valid: 'pgd', 'autoattack'"):
        robust_accuracy(model, x, y, attack="fgsm")
    with pytest.raises(ValueError, match="at least 4 classes.*attack='pgd'"):
        robust_accuracy(model, x, y, attack="autoattack")  # 3 classes
