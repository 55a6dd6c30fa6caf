"""Parity with Captum 0.7+ on a random float64 CNN: same definitions, same numbers."""

import numpy as np
import pytest
import torch
from captum._utils.models.linear_model import SkLearnRidge
from captum.attr import (
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    KernelShap,
    Lime,
    NoiseTunnel,
    Occlusion,
    Saliency,
)

import rxlit.rng
from rxlit.explain import explain, feature_groups, grid_mask
from rxlit.explain.lime import lime_coalitions
from rxlit.explain.regression import efficient_least_squares, least_squares
from rxlit.explain.shapley import shap_coalitions

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
TARGET = torch.tensor([1, 3])


def test_grad_is_signed_saliency(cnn, images):
    expected = Saliency(cnn).attribute(images.clone().requires_grad_(), target=TARGET, abs=False)
    assert torch.allclose(explain(cnn, images, TARGET, "grad"), expected, rtol=1e-10, atol=1e-12)


def test_grad_x_input(cnn, images):
    expected = InputXGradient(cnn).attribute(images.clone().requires_grad_(), target=TARGET)
    assert torch.allclose(explain(cnn, images, TARGET, "grad_x_input"), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rule", ["riemann_left", "riemann_right", "riemann_middle", "gausslegendre"])
def test_integrated_gradients(cnn, images, rule):
    expected = IntegratedGradients(cnn).attribute(images, baselines=0.0, target=TARGET, n_steps=7, method=rule)
    ours = explain(cnn, images, TARGET, "integrated_gradients", steps=7, rule=rule)
    # Captum builds its Riemann points in float32; ours are float64.
    assert torch.allclose(ours, expected, rtol=1e-6, atol=1e-9)


def test_integrated_gradients_default_is_captums_trapezoid_with_weights_summing_to_one(cnn, images):
    """Default: 10 points from the baseline to x, trapezoid weights. Captum's riemann_trapezoid has
    the same points but weights 1/n (ends halved) that sum to 1 - 1/n: it is ours times 0.9."""
    expected = IntegratedGradients(cnn).attribute(images, baselines=0.0, target=TARGET, n_steps=10,
                                                  method="riemann_trapezoid")
    ours = explain(cnn, images, TARGET, "integrated_gradients")
    assert torch.allclose(0.9 * ours, expected, rtol=1e-6, atol=1e-9)
    assert torch.equal(ours, explain(cnn, images, TARGET, "integrated_gradients", steps=10, rule="riemann_trapezoid"))


def test_guided_backprop(cnn, images):
    expected = GuidedBackprop(cnn).attribute(images.clone().requires_grad_(), target=TARGET)
    ours = explain(cnn, images, TARGET, "guided_backprop")
    assert torch.allclose(ours, expected, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(ours, explain(cnn, images, TARGET, "grad"))


def test_smoothgrad_with_captums_noise(cnn, images, monkeypatch):
    sigma, n = 0.05, 6
    drawn = []
    normal = torch.normal

    def recording_normal(*args, **kwargs):
        drawn.append(normal(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(torch, "normal", recording_normal)
    expected = NoiseTunnel(Saliency(cnn)).attribute(
        images, nt_type="smoothgrad", nt_samples=n, stdevs=sigma, target=TARGET, abs=False)
    monkeypatch.undo()
    # Captum's noise rows are example-major (repeat_interleave): view as (B, n, ...).
    standard = drawn[0].view(2, n, *images.shape[1:]) / sigma
    monkeypatch.setattr(rxlit.rng, "normal", lambda *a, **k: standard)
    ours = explain(cnn, images, TARGET, "smoothgrad", sigma=sigma, n_samples=n)
    assert torch.allclose(ours, expected, rtol=1e-9, atol=1e-12)


def test_occlusion(cnn, images):
    # 8 = 3 + 2 * 2.5: Captum's last window sticks out of the image and is cropped.
    expected = Occlusion(cnn).attribute(images, sliding_window_shapes=(3, 3, 3), strides=(3, 2, 2),
                                        baselines=0.0, target=TARGET)
    ours = explain(cnn, images, TARGET, "occlusion", patch=3, stride=2)
    # Captum accumulates occlusion attributions in float32.
    assert torch.allclose(ours.float(), expected.float(), rtol=1e-5, atol=1e-6 * expected.abs().max())


def _replay(rows):
    """A Captum perturbation generator that yields our coalitions, one per sample."""

    def perturb(original_input, **kwargs):
        for row in rows:
            yield row.long().unsqueeze(0)

    return perturb


def test_lime_solves_captums_regression(cnn, images):
    n, mask = 40, grid_mask(8, 8, n_groups=16)
    ours = explain(cnn, images, TARGET, "lime", n_samples=n, features=mask,
                   generator=torch.Generator().manual_seed(3))
    coalitions = lime_coalitions(torch.Generator().manual_seed(3), feature_groups(images, mask), n)
    for b in range(2):
        lime = Lime(cnn, interpretable_model=SkLearnRidge(alpha=1.0), perturb_func=_replay(coalitions[b]))
        expected = lime.attribute(images[b:b + 1], target=int(TARGET[b]), baselines=0.0,
                                  feature_mask=mask.view(1, 1, 8, 8), n_samples=n, perturbations_per_eval=n)
        scale = expected.abs().max()
        # Captum fits in float32.
        assert torch.allclose(ours[b:b + 1].float(), expected, rtol=1e-3, atol=1e-4 * scale)


def test_kernel_shap_solves_captums_regression(cnn, images):
    n, mask = 40, grid_mask(8, 8, n_groups=16)
    ours = explain(cnn, images, TARGET, "kernel_shap", n_samples=n, features=mask,
                   generator=torch.Generator().manual_seed(4))
    coalitions = shap_coalitions(torch.Generator().manual_seed(4), feature_groups(images, mask), n)
    assert coalitions[:, 0].all() and not coalitions[:, 1].any()
    for b in range(2):
        shap = KernelShap(cnn)
        shap.perturb_func = _replay(coalitions[b])
        expected = shap.attribute(images[b:b + 1], target=int(TARGET[b]), baselines=0.0,
                                  feature_mask=mask.view(1, 1, 8, 8), n_samples=n, perturbations_per_eval=n)
        scale = expected.abs().max()
        # Captum enforces the end points with weight 1e6 and fits in float32; we enforce them exactly.
        assert torch.allclose(ours[b:b + 1].float(), expected, rtol=1e-3, atol=2e-3 * scale)


def test_least_squares_matches_sklearn():
    from sklearn.linear_model import LinearRegression, Ridge

    rng = np.random.default_rng(0)
    z = rng.integers(0, 2, size=(3, 30, 8)).astype(float)
    y = rng.normal(size=(3, 30))
    w = rng.uniform(0.1, 2, size=(3, 30))
    coef, bias = least_squares(torch.tensor(z), torch.tensor(y), torch.tensor(w), alpha=1.0)
    for b in range(3):
        ridge = Ridge(alpha=1.0).fit(z[b], y[b], sample_weight=w[b])
        assert np.allclose(coef[b].numpy(), ridge.coef_, atol=1e-10)
        assert np.isclose(bias[b].item(), ridge.intercept_, atol=1e-10)
    # Underdetermined (n < k): the minimum-norm solution, as scipy's lstsq.
    z, y = rng.normal(size=(2, 5, 12)), rng.normal(size=(2, 5))
    coef, bias = least_squares(torch.tensor(z), torch.tensor(y))
    for b in range(2):
        ols = LinearRegression().fit(z[b], y[b])
        assert np.allclose(coef[b].numpy(), ols.coef_, atol=1e-8)
        assert np.isclose(bias[b].item(), ols.intercept_, atol=1e-8)


def test_efficient_least_squares_is_the_limit_of_heavy_end_weights():
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(1)
    z = np.concatenate([np.ones((1, 6)), np.zeros((1, 6)), rng.integers(0, 2, size=(25, 6))]).astype(float)
    y = rng.normal(size=27)
    active = torch.ones(1, 6, dtype=torch.bool)
    phi = efficient_least_squares(torch.tensor(z)[None], torch.tensor(y)[None], torch.tensor(y[1:2]),
                                  torch.tensor(y[0:1]), active)[0].numpy()
    assert np.isclose(phi.sum(), y[0] - y[1], atol=1e-12)
    w = np.ones(27)
    w[:2] = 1e9
    heavy = LinearRegression().fit(z, y, sample_weight=w)
    assert np.allclose(phi, heavy.coef_, atol=1e-5)


def test_pinv_solve_regular_and_singular_systems():
    """Cholesky for regular Gram matrices, eigh pseudo-inverse for singular ones: both = pinv."""
    from rxlit.explain.regression import pinv_solve

    gen = torch.Generator().manual_seed(0)
    design = torch.randn(4, 30, 6, generator=gen, dtype=torch.float64)
    design[2, :, 5] = 0  # a group that never varies
    design[3, :, 4] = design[3, :, 1]  # two identical columns
    gram = design.transpose(1, 2) @ design
    rhs = torch.randn(4, 6, 1, generator=gen, dtype=torch.float64)
    expected = torch.linalg.pinv(gram, hermitian=True) @ rhs
    assert torch.allclose(pinv_solve(gram, rhs), expected, rtol=1e-8, atol=1e-10)


def test_zero_design_columns_get_zero_coefficients():
    """All-zero columns (KernelSHAP's eliminated pivot, absent groups) take the fast path and give 0."""
    from sklearn.linear_model import LinearRegression

    gen = torch.Generator().manual_seed(1)
    z = torch.randint(0, 2, (2, 40, 7), generator=gen).double()
    z[:, :, 3] = 0
    y = torch.randn(2, 40, generator=gen, dtype=torch.float64)
    coef, bias = least_squares(z, y)
    for b in range(2):
        ols = LinearRegression().fit(z[b].numpy(), y[b].numpy())
        assert np.allclose(coef[b].numpy(), ols.coef_, atol=1e-9) and coef[b, 3] == 0
