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
    torch.manual_seed(0)
    x_adv = objective.perturb(model, x, y)
    torch.manual_seed(0)
    trained = objective.training_loss(model, x, y)
    assert torch.equal(trained.inputs, x)  # TRADES trains at the clean point
    loss = trained.at(x).loss
    p, q = model(x).softmax(1), model(x_adv).softmax(1)
    expected = F.cross_entropy(model(x), y, reduction="none") + 6.0 * (p * (p.log() - q.log())).sum(1)
    torch.testing.assert_close(loss, expected)


def penalty_at_training_point(objective, reg, model, x, y):
    """What the training step computes: the objective's loss at its point, then the penalty."""
    trained = objective.training_loss(model, x, y)
    inputs = trained.inputs.detach().requires_grad_(True)
    return reg.penalty(trained.at, inputs, trained.at(inputs).loss), trained


def test_gradnorm_penalty_matches_closed_form(batch):
    """For logits = W x + b, d CE / d x = W^T (softmax - onehot)."""
    model, (x, y) = linear_model(), batch
    reg = build_regularizer("gradnorm", weight=0.5)
    penalty, _ = penalty_at_training_point(build_objective("none"), reg, model, x, y)
    W = model[1].weight
    residual = model(x).softmax(1) - F.one_hot(y, 4).double()
    expected = 0.5 * (residual @ W).pow(2).sum(1).mean()
    torch.testing.assert_close(penalty, expected)
    penalty.backward()  # double backprop reaches the weights
    assert W.grad is not None and W.grad.abs().sum() > 0


def test_trades_gradnorm_penalises_the_whole_trades_loss(batch):
    """Linear logits a = W z + b and a fixed TRADES offset (c = W delta): the input gradient of
    CE(a) + beta KL(softmax(a) || softmax(a + c)) is W^T [p - e_y + beta (q - p - p*c + p (p.c))]."""
    model, (x, y) = linear_model(), batch
    with torch.no_grad():
        model[1].weight.mul_(10)  # confident logits: the KL term's gradient is not negligible
    beta = 6.0
    objective = build_objective("trades", eps=0.1, step=0.03, steps=3, beta=beta)
    torch.manual_seed(0)
    penalty, trained = penalty_at_training_point(objective, build_regularizer("gradnorm", weight=1.0), model, x, y)
    torch.manual_seed(0)
    delta = objective.perturb(model, x, y) - x
    W = model[1].weight
    p, q = model(x).softmax(1), model(x + delta).softmax(1)
    c = delta.flatten(1) @ W.T
    d_logits = p - F.one_hot(y, 4).double() + beta * (q - p - p * c + p * (p * c).sum(1, keepdim=True))
    torch.testing.assert_close(penalty, (d_logits @ W).pow(2).sum(1).mean())
    # neither part alone (the former penalty took only the KL part's gradient at x_adv) is the same
    kl_part = (beta * (q - p - p * c + p * (p * c).sum(1, keepdim=True))) @ W
    ce_part = (p - F.one_hot(y, 4).double()) @ W
    value = float(penalty.detach())
    for part in (kl_part.detach(), ce_part.detach()):
        assert abs(value - float(part.pow(2).sum(1).mean())) > 0.1 * value


@pytest.mark.parametrize("adv,kw", [("none", {}), ("pgd", dict(eps=0.1, step=0.03, steps=3)),
                                    ("trades", dict(eps=0.1, step=0.03, steps=3))])
def test_curvature_penalty_is_the_same_losss_hessian_vector_product(batch, adv, kw):
    """Finite difference of the objective's own loss gradient vs the exact Hessian-vector product
    (double autograd) of that loss, per example, at the objective's training point."""
    model, (x, y) = smooth_model(), batch
    objective = build_objective(adv, **kw)
    torch.manual_seed(0)
    penalty, _ = penalty_at_training_point(objective, build_regularizer("curvature", weight=1.0, h=1e-4), model, x, y)
    torch.manual_seed(0)
    trained = objective.training_loss(model, x, y)
    point = trained.inputs.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(trained.at(point).loss.sum(), point)
    v = g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    # examples are independent, so the Hessian of the summed loss is block diagonal: one HVP for all
    _, hv = torch.autograd.functional.hvp(lambda z: trained.at(z).loss.sum(), trained.inputs.detach(), v)
    expected = hv.flatten(1).pow(2).sum(1).mean()
    torch.testing.assert_close(penalty, expected, rtol=1e-3, atol=1e-10)


def test_curvature_sign_direction_is_cure(batch):
    """direction='sign': v = sign(g) / ||sign(g)||, CURE's direction (Moosavi-Dezfooli et al. 2019)."""
    model, (x, y) = smooth_model(), batch
    penalty, trained = penalty_at_training_point(
        build_objective("none"), build_regularizer("curvature", weight=1.0, h=1e-4, direction="sign"), model, x, y)
    point = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(trained.at(point).loss.sum(), point)
    v = g.sign() / g.sign().flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    _, hv = torch.autograd.functional.hvp(lambda z: trained.at(z).loss.sum(), x, v)
    torch.testing.assert_close(penalty, hv.flatten(1).pow(2).sum(1).mean(), rtol=1e-3, atol=1e-10)
    with pytest.raises(ValueError, match="reg.direction"):
        build_regularizer("curvature", direction="random")


def bn_model(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.BatchNorm1d(12), nn.Tanh(), nn.Linear(12, 4)).double()
    model[2].running_mean.normal_(0, 0.3)  # running statistics unlike the batch's
    model[2].running_var.uniform_(0.5, 2.0)
    return model.train()


def by_hand_with_fixed_statistics(model, x, y, mean, var):
    """The same network written out, normalising with given (constant) statistics."""
    linear1, bn, linear2 = model[1], model[2], model[4]
    h = (linear1(x.flatten(1)) - mean) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias
    return F.cross_entropy(linear2(torch.tanh(h)), y, reduction="none")


@pytest.mark.parametrize("reg_name", ["gradnorm", "curvature"])
def test_penalty_with_batchnorm_uses_the_training_batch_statistics_per_example(batch, reg_name):
    """With BatchNorm the penalty evaluates the trained function with the training forward's batch
    statistics held fixed: the same loss values, per-example gradients (the batch's penalty is the
    mean of its halves'), equal to the network written out by hand with constant statistics, and
    the running statistics and modes are left alone."""
    from rxlit.training.batchnorm import BatchStatistics

    model, (x, y) = bn_model(), batch
    reg = build_regularizer(reg_name, weight=1.0, h=1e-2) if reg_name == "curvature" else build_regularizer(reg_name, weight=1.0)
    objective = build_objective("none")
    stats = BatchStatistics(model)
    with stats.record():
        train_loss = objective.training_loss(model, x, y).at(x).loss  # the training forward (train mode)
    running = model[2].running_mean.clone()
    frozen = stats.frozen(objective.training_loss(model, x, y).at)
    torch.testing.assert_close(frozen(x).loss, train_loss)  # the trained function's values

    def penalty(rows):
        return reg.penalty(stats.frozen(objective.training_loss(model, x[rows], y[rows]).at), x[rows])

    whole = penalty(slice(None))
    torch.testing.assert_close(whole, (penalty(slice(0, 4)) + penalty(slice(4, 8))) / 2)
    assert torch.equal(model[2].running_mean, running) and model.training and model[2].training

    h = model[1](x.flatten(1)).detach()
    mean, var = h.mean(0), h.var(0, unbiased=False)
    point = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(by_hand_with_fixed_statistics(model, point, y, mean, var).sum(), point)
    if reg_name == "gradnorm":
        torch.testing.assert_close(whole, g.flatten(1).pow(2).sum(1).mean())
    else:
        v = (g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).detach()
        shifted = (x + 1e-2 * v).requires_grad_(True)
        (g2,) = torch.autograd.grad(by_hand_with_fixed_statistics(model, shifted, y, mean, var).sum(), shifted)
        torch.testing.assert_close(whole, ((g2 - g) / 1e-2).flatten(1).pow(2).sum(1).mean())


def explicit_operator_norm(conv: nn.Conv2d, shape) -> float:
    """Largest singular value of the conv as an explicit matrix (its Jacobian on the input shape)."""
    n = int(torch.tensor(shape).prod())
    basis = torch.eye(n).view(n, *shape)
    with torch.no_grad():
        matrix = nn.functional.conv2d(basis, conv.weight, None, conv.stride, conv.padding).flatten(1)
    return float(torch.linalg.matrix_norm(matrix, ord=2))


def test_spectral_norm_bounds_conv_operators():
    """Power iteration on the conv operator agrees with the SVD of the explicit matrix: each conv of
    a small_cnn, and a strided one, has operator norm 1 after the transform."""
    from rxlit.models import build_model

    torch.manual_seed(0)
    model = build_model("small_cnn", num_classes=10, in_chans=1, image_size=4, mean=[0.5], std=[0.25])
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    shapes = [(1, 4, 4), (32, 2, 2)]
    build_regularizer("spectral").transform_model(model, (1, 4, 4))
    model.train()
    for _ in range(3):
        model(torch.rand(4, 1, 4, 4))
    for conv, shape in zip(convs, shapes):
        assert explicit_operator_norm(conv, shape) == pytest.approx(1.0, abs=1e-3)
    strided = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    build_regularizer("spectral").transform_model(strided, (3, 7, 7))
    assert explicit_operator_norm(strided, (3, 7, 7)) == pytest.approx(1.0, abs=1e-3)


def test_spectral_norm_bounds_linear_layers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    build_regularizer("spectral", n_power_iterations=1).transform_model(model, (16,))
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
    with pytest.raises(ValueError, match="reg=gradnorm"):
        build_regularizer("gradnorm", wieght=0.5)


def test_lr_schedules():
    assert lr_factor(0, "cosine", 10) == 1.0
    assert lr_factor(5, "cosine", 10) == pytest.approx(0.5)
    assert [lr_factor(e, "multistep", 8, milestones=(0.5, 0.75)) for e in (0, 3, 4, 5, 6)] == \
        pytest.approx([1, 1, 0.1, 0.1, 0.01])
    assert lr_factor(0, "none", 10, warmup_epochs=3) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="cosine, multistep, none"):
        lr_factor(0, "linear", 10)
