"""Objectives and regularisers against closed forms and invariants."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rxlit.training.objectives import build_objective
from rxlit.training.optim import lr_factor
from rxlit.training.regularizers import build_regularizer


def linear_model(d=16, k=4, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, k)).double()


def smooth_model(d=16, k=4, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 32), nn.Tanh(), nn.Linear(32, k)).double()


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(8, 1, 4, 4, generator=g, dtype=torch.float64), torch.randint(0, 4, (8,), generator=g)


@pytest.mark.parametrize("name,kw,norm", [
    ("pgd", dict(eps=0.1, step=0.03, steps=5), "linf"),
    ("pgd_l2", dict(eps=0.5, step=0.2, steps=5), "l2"),
    ("fgsm_rs", dict(eps=0.1), "linf"),
    ("trades", dict(eps=0.1, step=0.03, steps=3), "linf"),
])
def test_adversarial_inputs_stay_in_ball_and_box(name, kw, norm, batch):
    model, (x, y) = linear_model().float(), batch
    x = x.float()
    adv = build_objective(name, **kw).perturb(model, x, y)
    delta = (adv - x).flatten(1)
    radius = delta.abs().max(1).values if norm == "linf" else delta.norm(dim=1)
    assert (radius <= kw["eps"] + 1e-5).all()
    assert adv.min() >= 0 and adv.max() <= 1
    assert radius.max() > 0.5 * kw["eps"]  # the attack actually moved


def test_pgd_increases_the_loss(batch):
    model, (x, y) = linear_model().float(), batch
    x = x.float()
    adv = build_objective("pgd", eps=0.1, step=0.03, steps=5).perturb(model, x, y)
    assert F.cross_entropy(model(adv), y) > F.cross_entropy(model(x), y) + 0.01


def test_attack_restores_train_mode(batch):
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Linear(8, 4)).train()
    x, y = batch
    running = model[2].running_mean.clone()
    build_objective("pgd", eps=0.1, step=0.03, steps=3).perturb(model, x.float(), y)
    assert model.training
    assert torch.equal(model[2].running_mean, running)  # BatchNorm was in eval mode while attacking


def test_trades_loss_is_ce_plus_beta_kl(batch):
    model, (x, y) = linear_model(), batch
    objective = build_objective("trades", eps=0.1, step=0.03, steps=2, beta=6.0)
    x_adv = (x + 0.05).clamp(0, 1)
    logits_adv = model(x_adv)
    loss = objective.loss(model, x, x_adv, logits_adv, y)
    p, q = model(x).softmax(1), logits_adv.softmax(1)
    expected = F.cross_entropy(model(x), y, reduction="none") + 6.0 * (p * (p.log() - q.log())).sum(1)
    torch.testing.assert_close(loss, expected)


def test_gradnorm_penalty_matches_closed_form(batch):
    """For logits = W x + b, d CE / d x = W^T (softmax - onehot)."""
    model, (x, y) = linear_model(), batch
    reg = build_regularizer("gradnorm", weight=0.5)
    inputs = x.clone().requires_grad_(True)
    per_example = F.cross_entropy(model(inputs), y, reduction="none")
    penalty = reg.penalty(model, inputs, y, per_example)
    W = model[1].weight
    residual = model(x).softmax(1) - F.one_hot(y, 4).double()
    expected = 0.5 * (residual @ W).pow(2).sum(1).mean()
    torch.testing.assert_close(penalty, expected)
    penalty.backward()  # double backprop reaches the weights
    assert W.grad is not None and W.grad.abs().sum() > 0


def test_curvature_penalty_approximates_hessian_vector_product(batch):
    model, (x, y) = smooth_model(), batch
    reg = build_regularizer("curvature", weight=1.0, h=1e-4)
    inputs = x.clone().requires_grad_(True)
    per_example = F.cross_entropy(model(inputs), y, reduction="none")
    penalty = reg.penalty(model, inputs, y, per_example)

    expected = []
    for xi, yi in zip(x, y):
        def loss_fn(z, yi=yi):
            return F.cross_entropy(model(z.unsqueeze(0)), yi.view(1))
        g = torch.autograd.functional.jacobian(loss_fn, xi).flatten()
        v = (g / g.norm()).view_as(xi)
        _, hv = torch.autograd.functional.hvp(loss_fn, xi, v)
        expected.append(hv.pow(2).sum())
    torch.testing.assert_close(penalty, torch.stack(expected).mean(), rtol=1e-3, atol=1e-10)


def test_spectral_norm_bounds_linear_layers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    build_regularizer("spectral", n_power_iterations=1).transform_model(model)
    model.train()
    for _ in range(30):  # power iteration converges during training forwards
        model(torch.randn(4, 16))
    for layer in (model[0], model[2]):
        assert torch.linalg.matrix_norm(layer.weight.detach(), ord=2) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("name,kw", [
    ("pgd", dict(eps=-0.1, step=0.01, steps=3)),
    ("pgd", dict(eps=0.1, step=0.01, steps=0)),
    ("pgd_l2", dict(eps=0.5, step=-1.0, steps=3)),
    ("trades", dict(eps=0.1, step=0.01, steps=3, beta=-1.0)),
])
def test_impossible_attack_budgets_are_refused(name, kw):
    with pytest.raises(ValueError, match="adv\\."):
        build_objective(name, **kw)


def test_unknown_objective_lists_valid_names():
    with pytest.raises(ValueError, match="fgsm_rs.*none.*pgd.*pgd_l2.*trades"):
        build_objective("pgdd")


def test_unknown_option_names_the_group():
    with pytest.raises(ValueError, match="adv=pgd"):
        build_objective("pgd", eps=0.1, step=0.01, steps=3, epsilon=2)


def test_lr_schedules():
    assert lr_factor(0, "cosine", 10) == 1.0
    assert lr_factor(5, "cosine", 10) == pytest.approx(0.5)
    assert [lr_factor(e, "multistep", 8, milestones=(0.5, 0.75)) for e in (0, 3, 4, 5, 6)] == \
        pytest.approx([1, 1, 0.1, 0.1, 0.01])
    assert lr_factor(0, "none", 10, warmup_epochs=3) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="cosine, multistep, none"):
        lr_factor(0, "linear", 10)
