"""One name per idea: a renamed option is refused with its new name (methods, metrics, the explain
config, the bounds), and the new name does what the old one did (closed forms)."""

import numpy as np
import pytest
import torch
from torch import nn

from rxlit import rng
from rxlit.evaluation import parse_spec
from rxlit.explain import explain, list_methods
from rxlit.explain.features import feature_groups
from rxlit.explain.lime import lime_coalitions
from rxlit.metrics import adversarial_sensitivity, compute_metric, local_lipschitz, robust_accuracy
from rxlit.metrics.bounds import explanation_bound
from rxlit.registry import RENAMED_OPTIONS


class Quadratic(nn.Module):
    """Logit 0 is ``x^T A x / 2`` (A symmetric): its gradient is ``A x``; logit 1 is 0."""

    def __init__(self, dim: int):
        super().__init__()
        torch.manual_seed(0)
        m = torch.randn(dim, dim, dtype=torch.float64)
        self.register_buffer("A", m + m.T)

    def forward(self, x):
        f = 0.5 * (x * (x @ self.A)).sum(1)
        return torch.stack([f, torch.zeros_like(f)], 1)


class TwoClassLinear(nn.Module):
    """Logits ``[0, w.x + b]``: the cross-entropy gradient of label y has the sign of ``(2y - 1) w``."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x):
        z = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(z), z], 1)


def test_every_renamed_option_is_refused_with_its_new_name(cnn, images):
    for method in ("smoothgrad", "unigrad", "smoothed"):
        with pytest.raises(ValueError, match=f"option 'n' of {method} was renamed 'n_samples'"):
            explain(cnn, images, 0, method, n=4)
    with pytest.raises(ValueError, match="option 'alpha' of lime was renamed 'ridge_alpha'"):
        explain(cnn, images, 0, "lime", alpha=1.0)
    with pytest.raises(ValueError, match="option 'n' of smoothgrad was renamed 'n_samples'"):  # as a base method
        explain(cnn, images, 0, "smoothed", base="smoothgrad", base_options={"n": 2})
    with pytest.raises(ValueError, match="option 'n' of smoothgrad was renamed 'n_samples'"):  # inside a metric
        local_lipschitz(cnn, images, 0, "smoothgrad", n_samples=2, method_options={"n": 4})
    with pytest.raises(ValueError, match="option 'alpha' of robust_accuracy was renamed 'step'"):
        robust_accuracy(cnn, images, torch.zeros(2, dtype=torch.long), alpha=0.01)
    with pytest.raises(ValueError, match="option 'alpha' of robust_accuracy was renamed 'step'"):
        compute_metric("robust_accuracy", cnn, images, torch.zeros(2, dtype=torch.long), alpha=0.01)
    with pytest.raises(ValueError, match="option 'step_size' of adversarial_sensitivity was renamed 'step'"):
        adversarial_sensitivity(cnn, images, 0, step_size=0.01)
    with pytest.raises(ValueError, match="option 'alpha' of lime was renamed 'ridge_alpha'"):
        explanation_bound("lime", {"alpha": 1.0, "kernel": "constant"}, images, L=1.0)


@pytest.mark.parametrize("name, old", [(name, old) for name, table in RENAMED_OPTIONS.items() for old in table])
def test_the_explain_config_refuses_old_names(name, old):
    cfg = {"methods": {"grad": {}}, "metrics": {"local_lipschitz": {}}}
    cfg["methods" if name in list_methods() else "metrics"][name] = {old: 1}
    with pytest.raises(ValueError, match=f"option '{old}' of {name} was renamed '{RENAMED_OPTIONS[name][old]}'"):
        parse_spec(cfg)


@pytest.mark.parametrize("method, draw", [("smoothgrad", lambda g, b, d: 0.05 * rng.normal(g, b, (8, d), dtype=torch.float64)),
                                          ("unigrad", lambda g, b, d: 0.05 * (2 * rng.uniform(g, b, (8, d), dtype=torch.float64) - 1))])
def test_n_samples_is_the_number_of_noise_draws(method, draw):
    """On ``f = x^T A x / 2`` the average gradient over draws z_j is ``A (x + mean_j z_j)``: with the
    example's own 8 keyed draws, exactly, and with any other count, not."""
    model, dim = Quadratic(6), 6
    x = torch.rand(3, dim, dtype=torch.float64)
    key = rng.ExampleRNG(7, torch.arange(3))
    scale = {"smoothgrad": {"sigma": 0.05}, "unigrad": {"r": 0.05}}[method]
    got = explain(model, x, 0, method, generator=rng.ExampleRNG(7, torch.arange(3)), n_samples=8, **scale)
    z_mean = draw(key, 3, dim).mean(1)
    torch.testing.assert_close(got, (x + z_mean) @ model.A)
    other = explain(model, x, 0, method, generator=rng.ExampleRNG(7, torch.arange(3)), n_samples=7, **scale)
    assert not torch.allclose(other, got)


def test_ridge_alpha_is_lime_ridge_strength():
    """On a linear f with baseline 0, a coalition's score is ``z.s`` (s: the groups' sums of w * x),
    so LIME with the constant kernel is the ridge regression with intercept of ``Z s`` on Z."""
    torch.manual_seed(0)
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    w = torch.randn(16, dtype=torch.float64)
    model = TwoClassLinear(w, 0.3)
    for ridge_alpha in (0.5, 4.0):
        got = explain(model, x, 1, "lime", generator=rng.ExampleRNG(3, torch.arange(2)), n_samples=40,
                      n_features=4, kernel="constant", ridge_alpha=ridge_alpha)
        groups = feature_groups(x, "grid", 4, None)
        z = lime_coalitions(rng.ExampleRNG(3, torch.arange(2)), groups, 40).numpy()
        s = groups.sums(x.flatten(1) * w).numpy()
        for b in range(2):
            zc = z[b] - z[b].mean(0)
            y = zc @ s[b]
            coef = np.linalg.solve(zc.T @ zc + ridge_alpha * np.eye(zc.shape[1]), zc.T @ y)
            expected = torch.as_tensor(coef)[groups.index[b]].view(1, 4, 4)
            torch.testing.assert_close(got[b], expected)


def test_step_is_the_pgd_step():
    """One step of size >= 2 eps from any start lands on the corner ``x + eps sign(grad)`` of a linear
    model (clamped to [0, 1]): the PGD's accuracy there is the closed form's, from any keyed start."""
    torch.manual_seed(1)
    w = torch.randn(12)
    x, y = torch.rand(32, 1, 3, 4), torch.randint(0, 2, (32,))
    model = TwoClassLinear(w, -(torch.rand(32, 12) @ w).median())
    eps = 0.1
    corner = (x + eps * (2 * y.float() - 1).view(-1, 1, 1, 1) * -w.sign().view(1, 1, 3, 4)).clamp(0, 1)
    expected = (model(corner).argmax(1) == y).float()
    assert 0 < expected.sum() < 32  # the attack flips some labels, not all
    keyed = robust_accuracy(model, x, y, eps=eps, step=2.5 * eps, steps=1, seed=0, index=torch.arange(50, 82), epoch=3)
    torch.testing.assert_close(keyed, expected)
    torch.testing.assert_close(robust_accuracy(model, x, y, eps=eps, step=2.5 * eps, steps=1, seed=0), expected)


def test_a_zero_step_keeps_the_monte_carlo_maximum(cnn, images):
    """adversarial_sensitivity's ascent moves by ``step``: step 0 stays on the best Monte Carlo sample."""
    kw = {"radius": 0.05, "n_samples": 4, "seed": 0, "index": torch.arange(2)}
    still = adversarial_sensitivity(cnn, images, 0, steps=3, step=0.0, **kw)
    torch.testing.assert_close(still, adversarial_sensitivity(cnn, images, 0, steps=0, **kw))
    assert (adversarial_sensitivity(cnn, images, 0, steps=3, **kw) >= still).all()
