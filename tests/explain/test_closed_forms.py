"""Closed-form properties from Tan & Tian (2023), Yeh et al. (2019) and Agarwal et al. (2021)."""

import math

import pytest
import torch
from explain_nets import tiny_cnn, tiny_mlp
from torch import nn

from rxlit.explain import explain, grid_mask
from rxlit.explain.noise import tan_tian_samples
from rxlit.explain.optimal import clipped_noise_moments
from rxlit.explain.toy import LinearScore, PiecewiseToy, toy_smoothed_gradient


def g(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def linear():
    torch.manual_seed(0)
    theta = torch.randn(3, 1 * 4 * 4, dtype=torch.float64)
    return LinearScore(theta, torch.randn(3, dtype=torch.float64)), theta


@pytest.fixture
def x16():
    torch.manual_seed(2)
    return 0.1 + 0.8 * torch.rand(2, 1, 4, 4, dtype=torch.float64)


def test_tan_tian_sample_rule():
    assert tan_tian_samples(0.03) == 30  # 0.03 / 0.01 = 2.9999999999999996 in floats
    assert [tan_tian_samples(s) for s in (0.001, 0.0099, 0.01, 0.05, 0.07, 0.1, 0.29)] == [10, 10, 10, 50, 70, 100, 290]


@pytest.mark.parametrize("method,options", [
    ("grad", {}), ("smoothgrad", {"sigma": 0.2}), ("unigrad", {"r": 0.2}),
    ("smoothed", {"base": "grad", "kernel": "laplace", "sigma": 0.2}),
    ("clime", {"sigma": 0.1, "n_samples": 40}),  # exact once n > d + 1: f(x + xi) is linear in xi
    ("noisy_baseline", {"n_samples": 40, "second_moment": "sample"}),  # exact once n >= d
    ("square", {"max_side": 2}),  # one channel, x > 0: the optimum is theta
])
def test_linear_model_gives_theta(linear, x16, method, options):
    model, theta = linear
    target = torch.tensor([0, 2])
    out = explain(model, x16, target, method, generator=g(), **options)
    assert torch.allclose(out.flatten(1), theta[target], atol=1e-8)


def test_linear_model_other_closed_forms(linear, x16):
    model, theta = linear
    target = torch.tensor([1, 1])
    contribution = x16.flatten(1) * theta[target]
    assert torch.allclose(explain(model, x16, target, "grad_x_input").flatten(1), contribution)
    assert torch.allclose(explain(model, x16, target, "integrated_gradients").flatten(1), contribution)
    # Additive model, zero baseline: KernelSHAP and unregularised LIME recover each group's x.theta.
    mask = grid_mask(4, 4, n_groups=4)
    group_sum = torch.zeros(2, 4, dtype=torch.float64).scatter_add_(1, mask.flatten().repeat(2, 1), contribution)
    expected = group_sum.gather(1, mask.flatten().repeat(2, 1))
    for method, options in (("kernel_shap", {}), ("lime", {"ridge_alpha": 0.0})):
        out = explain(model, x16, target, method, generator=g(), features=mask, n_samples=30, **options)
        assert torch.allclose(out.flatten(1), expected, atol=1e-9), method
    # Noisy baseline with the exact second moment: unbiased, Monte Carlo error only.
    out = explain(model, x16, target, "noisy_baseline", generator=g(), n_samples=4000, second_moment="exact")
    assert torch.corrcoef(torch.stack([out.flatten(), theta[target].flatten()]))[0, 1] > 0.97


def test_clipped_noise_moments_match_monte_carlo():
    c = (-0.2 * torch.randn(2_000_000, generator=g(), dtype=torch.float64)).clamp(0, 1)
    mean, var = clipped_noise_moments(0.2)
    assert abs(c.mean().item() - mean) < 3e-4 and abs(c.var().item() - var) < 3e-4
    c = (-2.0 * torch.randn(2_000_000, generator=g(1), dtype=torch.float64)).clamp(0, 1)  # clipping at 1 matters
    mean, var = clipped_noise_moments(2.0)
    assert abs(c.mean().item() - mean) < 1e-3 and abs(c.var().item() - var) < 1e-3


class Combination(nn.Module):
    def __init__(self, a, f1, b, f2):
        super().__init__()
        self.a, self.f1, self.b, self.f2 = a, f1, b, f2

    def forward(self, x):
        return self.a * self.f1(x) + self.b * self.f2(x)


LINEAR_IN_F = [("grad", {}), ("grad_x_input", {}), ("integrated_gradients", {}), ("smoothgrad", {"n_samples": 4}),
               ("unigrad", {"n_samples": 4}), ("smoothed", {"base": "integrated_gradients", "n_samples": 3}),
               ("clime", {"n_samples": 20}), ("lime", {"n_samples": 20}), ("kernel_shap", {"n_samples": 20}),
               ("occlusion", {}), ("noisy_baseline", {"n_samples": 10}), ("square", {"max_side": 2})]


@pytest.mark.parametrize("method,options", LINEAR_IN_F)
def test_linear_in_f(images, method, options):
    """explain(a f1 + b f2) = a explain(f1) + b explain(f2) given the same noise (Agarwal et al. 2021)."""
    f1, f2 = tiny_cnn(seed=1), tiny_cnn(seed=2)
    target = torch.tensor([0, 4])
    both = explain(Combination(2.0, f1, -0.5, f2), images, target, method, generator=g(), **options)
    one = explain(f1, images, target, method, generator=g(), **options)
    two = explain(f2, images, target, method, generator=g(), **options)
    assert torch.allclose(both, 2.0 * one - 0.5 * two, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("rule", ["riemann_trapezoid", "gausslegendre"])
def test_integrated_gradients_completeness(rule):
    """Sum of IG = f(x) - f(0) within 1% on a ReLU net (the class with the largest gap)."""
    model = tiny_cnn(seed=3)
    torch.manual_seed(1)
    x = torch.rand(4, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        gaps = model(x) - model(torch.zeros_like(x))
    target = gaps.abs().argmax(1)
    attribution = explain(model, x, target, "integrated_gradients", steps=200, rule=rule)
    assert torch.allclose(attribution.flatten(1).sum(1), gaps[torch.arange(4), target], rtol=1e-2)


def test_kernel_shap_efficiency():
    model = tiny_cnn(in_chans=1, size=4, seed=4)
    torch.manual_seed(5)
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    target = torch.tensor([0, 1, 2])
    gap = (model(x) - model(torch.zeros_like(x)))[torch.arange(3), target]
    phi = explain(model, x, target, "kernel_shap", features="elements", n_samples=50, generator=g())
    assert torch.allclose(phi.flatten(1).sum(1), gap, atol=1e-5)
    # With patches the constraint holds for the group weights (each broadcast to its 4 pixels).
    phi = explain(model, x, target, "kernel_shap", features=grid_mask(4, 4, side=2), n_samples=20, generator=g())
    assert torch.allclose(phi.flatten(1).sum(1) / 4, gap, atol=1e-5)


def test_piecewise_toy_smoothing_moves_towards_half_half():
    """Tan & Tian section 5.2: grad = [1, 0] at x1 > x2; the smoothed gradient tends to [.5, .5]."""
    x = torch.tensor([[0.6, 0.5]], dtype=torch.float64)
    toy = PiecewiseToy()
    assert torch.equal(explain(toy, x, 0, "grad"), torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    distances = []
    for sigma in (0.02, 0.1, 1.0, 10.0):
        sg = explain(toy, x, 0, "smoothgrad", sigma=sigma, n_samples=20000, generator=g())
        exact = torch.tensor([toy_smoothed_gradient(0.6, 0.5, sigma)], dtype=torch.float64)
        assert torch.allclose(sg, exact, atol=0.015)
        distances.append((sg - 0.5).abs().max().item())
    assert distances == sorted(distances, reverse=True) and distances[-1] < 0.02


def test_smoothgrad_and_clime_converge(tmp_path):
    """Agarwal et al. 2021: SmoothGrad and C-LIME estimate the same vector; the gap shrinks with n."""
    model = tiny_mlp(dim=6, seed=6)
    torch.manual_seed(7)
    x = torch.rand(4, 6, dtype=torch.float64)
    sizes = (64, 256, 1024, 4096)
    gaps = []
    for n in sizes:
        per_seed = []
        for seed in range(3):
            sg = explain(model, x, 0, "smoothgrad", sigma=0.1, n_samples=n, generator=g(seed))
            cl = explain(model, x, 0, "clime", sigma=0.1, n_samples=n, generator=g(100 + seed))
            per_seed.append(((sg - cl).norm(dim=1) / sg.norm(dim=1)).mean())
        gaps.append(torch.stack(per_seed).mean().item())
    slope = torch.linalg.lstsq(torch.tensor([[math.log(n), 1.0] for n in sizes]),
                               torch.tensor(gaps).log().unsqueeze(1)).solution[0].item()
    assert gaps[-1] < gaps[0] and slope < -0.25, (gaps, slope)


def test_noisy_baseline_exact_solution_is_sherman_morrison_of_the_known_moments():
    """phi = (v Id + u u^T)^-1 mean_j(I_j df_j), with I_j = x - c_j, solved directly in float64."""
    from rxlit.explain.optimal import _exact_solution

    gen = g(3)
    x = torch.rand(2, 5, generator=gen, dtype=torch.float64)
    baselines = (-0.2 * torch.randn(2, 7, 5, generator=gen, dtype=torch.float64)).clamp(0, 1)
    drops = torch.randn(2, 7, generator=gen, dtype=torch.float64)
    mean, var = clipped_noise_moments(0.2)
    u = x - mean
    second = var * torch.eye(5, dtype=torch.float64) + u.unsqueeze(2) * u.unsqueeze(1)
    first = ((x.unsqueeze(1) - baselines) * drops.unsqueeze(2)).mean(1)
    expected = torch.linalg.solve(second, first.unsqueeze(2)).squeeze(2)
    assert torch.allclose(_exact_solution(x, baselines, drops, 0.2), expected, rtol=1e-10, atol=1e-12)


def test_noisy_baseline_optimum_beats_grad_on_its_own_law():
    """Yeh et al. Table 1: the Noisy Baseline explanation has the lowest infidelity under its law
    (here against Grad on a ReLU net, infidelity measured on fresh draws)."""
    from rxlit.metrics import infidelity

    model = tiny_mlp(16, act=nn.ReLU)
    x = torch.rand(8, 1, 4, 4, generator=g(3), dtype=torch.float64)
    target = torch.zeros(8, dtype=torch.long)
    optimum = explain(model, x, target, "noisy_baseline", generator=g(4), n_samples=400)
    grad = explain(model, x, target, "grad")
    law = {"perturbation": "noisy_baseline", "n_samples": 2000, "generator": g(5)}
    infd_optimum = infidelity(model, x, target, attributions=optimum, **law).mean()
    infd_grad = infidelity(model, x, target, attributions=grad, **{**law, "generator": g(5)}).mean()
    assert infd_optimum < 0.8 * infd_grad
