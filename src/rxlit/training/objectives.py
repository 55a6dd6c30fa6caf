"""Training objectives: standard, PGD (L-inf, L2), FGSM with random start, TRADES.

An objective has two stages so that a regulariser can reuse the training forward pass:
``perturb(model, x, y)`` makes the training inputs (no parameter gradients), then
``loss(model, x, x_train, logits, y)`` gives per-example losses from ``logits = model(x_train)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchattacks
from torch import Tensor, nn

from rxlit.registry import Registry
from rxlit.training.attacks import check_budget, pgd

OBJECTIVES = Registry("adv (training objective)")


class Objective:
    """Standard empirical risk: cross-entropy on clean inputs."""

    name = "none"

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return x

    def loss(self, model: nn.Module, x: Tensor, x_train: Tensor, logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits, y, reduction="none")


class AttackObjective(Objective):
    """Cross-entropy on adversarial examples from a torchattacks attack built per model."""

    def __init__(self, make_attack, name: str | None = None):
        self._make_attack = make_attack
        if name is not None:
            self.name = name
        self._attacks: dict[int, object] = {}

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        attack = self._attacks.get(id(model))
        if attack is None:
            attack = self._attacks[id(model)] = self._make_attack(model)
        with torch.enable_grad():
            return attack(x, y).detach()


@OBJECTIVES.register("none")
def standard() -> Objective:
    return Objective()


@OBJECTIVES.register("pgd")
def pgd_linf(eps: float, step: float, steps: int, random_start: bool = True) -> Objective:
    """Madry et al. PGD adversarial training in the L-inf ball."""
    check_budget(eps, step, steps)
    return AttackObjective(lambda m: pgd(m, eps, step, steps, "linf", random_start), name="pgd")


@OBJECTIVES.register("pgd_l2")
def pgd_l2(eps: float, step: float, steps: int, random_start: bool = True) -> Objective:
    """PGD adversarial training in the L2 ball."""
    check_budget(eps, step, steps)
    return AttackObjective(lambda m: pgd(m, eps, step, steps, "l2", random_start), name="pgd_l2")


@OBJECTIVES.register("fgsm_rs")
def fgsm_rs(eps: float, step_scale: float = 1.25) -> Objective:
    """Wong et al. 2020 'fast' FGSM with a uniform random start, step = step_scale * eps."""
    check_budget(eps, step_scale * eps if eps > 0 else None)
    return AttackObjective(lambda m: torchattacks.FFGSM(m, eps=eps, alpha=step_scale * eps), name="fgsm_rs")


class Trades(AttackObjective):
    """TRADES (Zhang et al. 2019): CE(f(x), y) + beta * KL(p(x) || p(x_adv)).

    The inner maximisation is torchattacks' TPGD (KL ascent from x + 0.001 N(0, I)).
    Accuracy is reported on the clean logits.
    """

    name = "trades"

    def __init__(self, eps: float, step: float, steps: int, beta: float):
        super().__init__(lambda m: torchattacks.TPGD(m, eps=eps, alpha=step, steps=int(steps)))
        self.beta = beta

    def loss(self, model, x, x_train, logits, y):
        clean_logits = model(x)
        kl = F.kl_div(F.log_softmax(logits, dim=1), F.softmax(clean_logits, dim=1), reduction="none").sum(1)
        return F.cross_entropy(clean_logits, y, reduction="none") + self.beta * kl


@OBJECTIVES.register("trades")
def trades(eps: float, step: float, steps: int, beta: float = 6.0) -> Objective:
    check_budget(eps, step, steps)
    if beta < 0:
        raise ValueError(f"adv.beta must be >= 0 (got {beta})")
    return Trades(eps, step, steps, beta)


def build_objective(name: str, **kwargs) -> Objective:
    factory = OBJECTIVES.get(name)
    try:
        return factory(**kwargs)
    except TypeError as err:
        raise ValueError(f"bad options for adv={name}: {err}") from err
