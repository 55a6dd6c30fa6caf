"""The evaluation attack covers its ball, uses the norm and budget of what it evaluates, and is
refused when it cannot reach the edge of the ball."""

import math

import pytest
from rxlit_configs import compose

from rxlit.training.attacks import STEP_FACTOR, eval_attack_spec
from rxlit.training.batchnorm import sync_batchnorm

DATASETS = ["digits", "synthetic", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "imagefolder"]


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("adv", ["none", "pgd", "pgd_l2", "trades"])
def test_default_evaluation_attack_reaches_the_edge_of_its_ball(data, adv):
    cfg = compose("train", [f"data={data}", f"adv={adv}"])
    budget = dict(cfg.data.attack)
    spec = eval_attack_spec(dict(cfg.eval_attack), budget, adv)
    norm = "l2" if adv == "pgd_l2" else "linf"
    assert spec["norm"] == norm
    assert spec["eps"] == pytest.approx(budget["eps_l2" if norm == "l2" else "eps"])
    assert spec["steps"] * spec["step"] >= spec["eps"]  # from x, PGD can reach the ball's edge
    assert spec["step"] == pytest.approx(STEP_FACTOR * spec["eps"] / spec["steps"])
    # the training attack of the data set covers its ball too
    assert budget["steps"] * budget["step"] >= budget["eps"] and budget["steps"] * budget["step_l2"] >= budget["eps_l2"]


def test_cifar_default_is_the_standard_pgd10_evaluation():
    spec = eval_attack_spec(dict(compose("train", ["data=cifar10"]).eval_attack), {"eps": 8 / 255}, "pgd")
    assert (spec["eps"], spec["steps"], spec["step"]) == pytest.approx((8 / 255, 10, 2 / 255))


def test_short_steps_are_refused_and_explicit_values_kept():
    budget = {"eps": 0.3, "eps_l2": 2.0}
    with pytest.raises(ValueError, match=r"10 x 0.01 = 0.1 < eps 0.3.*eval_attack.step=null"):
        eval_attack_spec({"n_examples": 8, "steps": 10, "step": 0.01}, budget)
    spec = eval_attack_spec({"n_examples": 8, "norm": "l2", "eps": 1.0, "steps": 20, "step": 0.1}, budget)
    assert (spec["norm"], spec["eps"], spec["step"]) == ("l2", 1.0, 0.1)
    assert eval_attack_spec({"n_examples": 0}, None)["n_examples"] == 0  # off: nothing to check
    with pytest.raises(ValueError, match="test_attack"):
        eval_attack_spec({"n_examples": 8, "test_attack": "cw"}, budget)
    with pytest.raises(ValueError, match="eval_attack.norm"):
        eval_attack_spec({"n_examples": 8, "norm": "l1"}, budget)


def test_sync_batchnorm_only_where_torch_supports_it(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert sync_batchnorm({"accelerator": "auto", "sync_batchnorm": "auto"}) is False
    assert sync_batchnorm({"accelerator": "gpu", "sync_batchnorm": "auto"}) is True
    assert sync_batchnorm({"accelerator": "cpu"}) is False
    with pytest.raises(ValueError, match="needs CUDA.*sync_batchnorm=auto or false"):
        sync_batchnorm({"accelerator": "cpu", "sync_batchnorm": True})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert sync_batchnorm({"accelerator": "auto", "sync_batchnorm": "auto"}) is True


def test_autoattack_scores_the_test_split(make_cfg, monkeypatch):
    """eval_attack.test_attack=autoattack: test/adv_acc is standard AutoAttack's (on an untrained
    model its first stage already breaks every example, so this stays quick); val keeps PGD."""
    import torchattacks

    from rxlit.app.train import train

    built = []

    class Spy(torchattacks.AutoAttack):
        def __init__(self, *args, **kwargs):
            built.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(torchattacks, "AutoAttack", Spy)
    report = train(make_cfg(["eval_attack.test_attack=autoattack", "eval_attack.n_examples=8"]))
    assert len(built) == 1 and built[0]["version"] == "standard" and built[0]["eps"] == pytest.approx(0.1)
    assert math.isfinite(report["test"]["test/adv_acc"]) and report["test"]["test/adv_acc"] <= report["test"]["test/acc"]
    assert math.isfinite(report["fit"]["val/adv_acc"])


def test_autoattack_needs_four_classes():
    from torch import nn

    from rxlit.metrics.attacks import autoattack

    with pytest.raises(ValueError, match="at least 4 classes.*test_attack=pgd"):
        autoattack(nn.Linear(2, 3), 0.1, "linf", n_classes=3)
