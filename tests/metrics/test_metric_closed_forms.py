"""Closed forms: linear and quadratic functions where the metric's value is known exactly."""

import pytest
import torch
from metric_nets import Linear, Quadratic

from rxlit.metrics import (
    deletion_auc,
    faithfulness_correlation,
    gradient_norm,
    infidelity,
    insertion_auc,
    local_lipschitz,
    model_local_lipschitz,
    model_smoothness,
    tan_faithfulness,
)


@pytest.fixture
def linear():
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(64, generator=g, dtype=torch.float64)
    x = torch.rand(6, 1, 8, 8, generator=g, dtype=torch.float64)
    return Linear(theta), theta.view(1, 1, 8, 8).expand_as(x).clone(), x


@pytest.mark.parametrize("perturbation", ["noisy_baseline", "gaussian", "square"])
@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_of_the_optimal_explanation_is_zero(linear, perturbation, normalize):
    # Yeh et al.: for linear f, f(x) - f(x - I) = theta^T I exactly, so phi = theta is optimal.
    model, theta, x = linear
    n = 40 if perturbation == "square" else 200
    infd = infidelity(model, x, 0, theta, perturbation=perturbation, n_samples=n, normalize=normalize, seed=0)
    assert infd.abs().max() < 1e-20
    worse = infidelity(model, x, 0, theta + 0.3 * torch.randn_like(theta), perturbation=perturbation,
                       n_samples=n, normalize=normalize, seed=0)
    assert (worse > 1e-4).all()


def test_normalized_infidelity_is_scale_invariant(linear):
    model, theta, x = linear
    phi = theta + torch.randn_like(theta)
    a = infidelity(model, x, 0, phi, seed=3)
    b = infidelity(model, x, 0, 7.5 * phi, seed=3)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(infidelity(model, x, 0, phi, seed=3, normalize=False),
                              infidelity(model, x, 0, 7.5 * phi, seed=3, normalize=False))


def test_square_perturbation_enumerates_every_square(linear):
    model, theta, x = linear
    # sides 1..3 on 8x8: 64 + 49 + 36 squares; infidelity of phi = 0 is the mean of df^2.
    infd = infidelity(model, x, 0, torch.zeros_like(x), perturbation="square", max_side=3, normalize=False)
    masks = []
    for s in (1, 2, 3):
        for i in range(9 - s):
            for j in range(9 - s):
                m = torch.zeros(8, 8, dtype=torch.float64)
                m[i:i + s, j:j + s] = 1
                masks.append(m)
    masks = torch.stack(masks).view(-1, 64)
    df = (x.flatten(1) * theta.flatten(1)) @ masks.T
    torch.testing.assert_close(infd, df.pow(2).mean(1))


def test_square_explanation_minimises_the_square_law_infidelity():
    """The "square" explanation and infidelity's "square" law enumerate the same squares: on a
    nonlinear model the explanation is the least-squares optimum, so its unnormalised infidelity is
    a minimum (stepping either way along any direction that changes I.phi costs the quadratic term)."""
    from rxlit.explain import explain

    g = torch.Generator().manual_seed(2)
    M = torch.randn(36, 36, generator=g, dtype=torch.float64)
    model = Quadratic(M @ M.T / 36)
    x = 0.2 + 0.8 * torch.rand(3, 1, 6, 6, generator=g, dtype=torch.float64)
    phi = explain(model, x, torch.zeros(3, dtype=torch.long), "square", max_side=2)

    def infd(a):
        return infidelity(model, x, 0, a, perturbation="square", max_side=2, normalize=False)

    best = infd(phi)
    for _ in range(3):
        d = 0.05 * torch.randn(x.shape, generator=g, dtype=torch.float64)
        assert (infd(phi + d) > best).all() and (infd(phi - d) > best).all()
    # first-order optimality: the infidelity is quadratic in phi, so the two steps cost the same
    torch.testing.assert_close(infd(phi + d) - best, infd(phi - d) - best, rtol=1e-6, atol=1e-12)


def test_local_lipschitz_of_grad_on_a_quadratic_approaches_the_spectral_norm():
    # grad f(x) - grad f(x_i) = A (x - x_i): the ratio is ||A u||, u a random direction, whose
    # maximum tends to ||A||_2 from below. d = 4 keeps the top-eigenvector cap non-negligible.
    g = torch.Generator().manual_seed(0)
    M = torch.randn(4, 4, generator=g, dtype=torch.float64)
    A = M @ M.T
    spectral = torch.linalg.matrix_norm(A, ord=2)
    x = torch.rand(3, 1, 2, 2, generator=g, dtype=torch.float64)
    few = local_lipschitz(Quadratic(A), x, 0, n_samples=5, seed=0)
    many = local_lipschitz(Quadratic(A), x, 0, n_samples=4000, seed=0)
    assert (many <= spectral * (1 + 1e-12)).all()
    assert (many >= 0.97 * spectral).all()
    assert (few <= many).all()
    uniform = local_lipschitz(Quadratic(A), x, 0, n_samples=4000, noise="uniform", seed=0)
    assert (uniform <= spectral * (1 + 1e-12)).all() and (uniform >= 0.95 * spectral).all()
    # the Theorem 4.1 grad bound L(grad) <= H, with H the (exact) smoothness here
    assert (model_smoothness(Quadratic(A), x, 0, n_samples=200, seed=1) <= spectral * (1 + 1e-12)).all()


def test_model_lipschitz_and_gradient_norm_of_a_linear_model(linear):
    model, theta, x = linear
    norm = theta[0].norm()
    torch.testing.assert_close(gradient_norm(model, x, 0), norm.expand(6))
    local = model_local_lipschitz(model, x, 0, n_samples=500, seed=0)
    assert (local <= norm * (1 + 1e-12)).all() and (local > 0.2 * norm).all()
    # vector output (theta, -theta): the logit vector's L2 change is sqrt(2) times larger
    two = Linear(theta[0].flatten(), two=True)
    torch.testing.assert_close(model_local_lipschitz(two, x, 0, output="logits", n_samples=50, seed=0),
                               2 ** 0.5 * model_local_lipschitz(two, x, 0, n_samples=50, seed=0))


@pytest.mark.parametrize("groups", [16, "pixels"])
def test_tan_faithfulness_is_maximal_for_grad_of_a_linear_model(linear, groups):
    model, theta, x = linear
    best = tan_faithfulness(model, x, 0, theta, groups=groups)
    noisy = theta + 0.5 * torch.randn_like(theta)
    assert (best > 1e8).all()
    assert (best > tan_faithfulness(model, x, 0, noisy, groups=groups)).all()
    for sim in ("pearson", "spearman"):
        torch.testing.assert_close(tan_faithfulness(model, x, 0, theta, groups=groups, similarity=sim),
                                   torch.ones(6, dtype=torch.float64))
        assert (tan_faithfulness(model, x, 0, noisy, groups=groups, similarity=sim) < 1).all()
    # computed from explain() when no attributions are given
    torch.testing.assert_close(tan_faithfulness(model, x, 0, method="grad", groups=groups), best)


def test_tan_faithfulness_per_pixel_is_the_paper_formula(linear):
    model, theta, x = linear
    phi = torch.randn_like(x)
    p = theta * x / x  # (f(x) - f(x_i := 0)) / (x_i - 0) = theta_i for a linear f
    expected = 1 / (phi - p).flatten(1).norm(dim=1)
    torch.testing.assert_close(tan_faithfulness(model, x, 0, phi, groups="pixels"), expected)


def test_deletion_and_insertion_endpoints_and_ordering(linear):
    model, theta, x = linear
    contributions = theta * x  # exact per-pixel contribution of a linear logit
    f_x, f_0 = model(x)[:, 0], torch.zeros(6, dtype=torch.float64)
    one_step = deletion_auc(model, x, 0, contributions, groups="pixels", n_steps=1, output="logit")
    torch.testing.assert_close(one_step, (f_x + f_0) / 2)
    good = deletion_auc(model, x, 0, contributions, groups="pixels", output="logit")
    bad = deletion_auc(model, x, 0, -contributions, groups="pixels", output="logit")
    assert (good < bad).all()
    good_in = insertion_auc(model, x, 0, contributions, groups="pixels", output="logit")
    assert (good_in > insertion_auc(model, x, 0, -contributions, groups="pixels", output="logit")).all()
    # ranking by the exact contributions gives the extreme curves: deletion + insertion areas of
    # the same ranking are symmetric around (f(x) + f(0)) for a linear model
    torch.testing.assert_close(good + good_in, f_x + f_0)


def test_faithfulness_correlation_is_one_for_exact_contributions(linear):
    model, theta, x = linear
    exact = faithfulness_correlation(model, x, 0, theta * x, n_samples=50, subset_size=10, seed=0)
    torch.testing.assert_close(exact, torch.ones(6, dtype=torch.float64))
    grouped = faithfulness_correlation(model, x, 0, theta * x, n_samples=50, groups=16, subset_size=4, seed=0)
    torch.testing.assert_close(grouped, torch.ones(6, dtype=torch.float64))
    random = faithfulness_correlation(model, x, 0, torch.randn_like(x), n_samples=50, seed=0)
    assert (random < 0.9).all()
