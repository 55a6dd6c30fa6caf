"""Training objectives: standard, PGD (L-inf, L2), FGSM with random start, TRADES.

Every objective exposes one per-example loss as a function of the input point:
``training_loss(model, x, y)`` runs the attack (no parameter gradients) and returns
``TrainingLoss(inputs, at)``, where ``inputs`` is the point the objective trains at and
``at(z)`` evaluates the same per-example loss at any point ``z``. The training step calls
``at(inputs)``; a regulariser that needs the loss elsewhere (the curvature penalty's shifted
point) or with its own forward pass calls ``at`` too, so it always differentiates the loss the
model is trained on.

============  =================  ===================================================
objective     ``inputs``         per-example loss ``at(z)``
============  =================  ===================================================
none          x                  CE(f(z), y)
pgd, pgd_l2,  x_adv              CE(f(z), y)
fgsm_rs
trades        x                  CE(f(z), y) + beta KL(p(z) || p(z + delta)),
                                 delta = x_adv - x held fixed
============  =================  ===================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
import torchattacks
from torch import Tensor, nn

from rxlit.metrics.attacks import check_budget, pgd
from rxlit.registry import Registry

OBJECTIVES = Registry("adv (training objective)")


class LossAt(NamedTuple):
    """The per-example loss at one point and the logits it saw there (None: not computed)."""

    loss: Tensor
    clean_logits: Tensor | None
    adv_logits: Tensor | None


class TrainingLoss(NamedTuple):
    """One batch's per-example training loss: the point it trains at and the loss as a function of
    the point (``at(z) -> LossAt``)."""

    inputs: Tensor
    at: Callable[[Tensor], LossAt]


class Objective:
    """Standard empirical risk: cross-entropy on clean inputs."""

    name = "none"
    adversarial = False  # True when the loss sees adversarial inputs (logs train/adv_acc)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """The inputs of the inner maximisation's result (x itself for standard training)."""
        return x

    def training_loss(self, model: nn.Module, x: Tensor, y: Tensor) -> TrainingLoss:
        def at(z: Tensor) -> LossAt:
            logits = model(z)
            return LossAt(F.cross_entropy(logits, y, reduction="none"), logits, None)

        return TrainingLoss(x, at)


class AttackObjective(Objective):
    """Cross-entropy on adversarial examples from an attack built per model (``make_attack(model)``
    returns ``attack(x, y) -> x_adv``)."""

    adversarial = True

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

    def training_loss(self, model: nn.Module, x: Tensor, y: Tensor) -> TrainingLoss:
        def at(z: Tensor) -> LossAt:
            logits = model(z)
            return LossAt(F.cross_entropy(logits, y, reduction="none"), None, logits)

        return TrainingLoss(self.perturb(model, x, y), at)


@OBJECTIVES.register("none")
def standard() -> Objective:
    return Objective()


@OBJECTIVES.register("pgd")
def pgd_linf(eps: float, step: float, steps: int, random_start: bool = True) -> Objective:
    """Madry et al. PGD adversarial training in the L-inf ball (:func:`rxlit.metrics.attacks.pgd`, the
    attack of ``val/adv_acc``; its random start from torch's global generator)."""
    check_budget(eps, step, steps)
    return AttackObjective(lambda m: _pgd_attack(m, eps, step, steps, "linf", random_start), name="pgd")


@OBJECTIVES.register("pgd_l2")
def pgd_l2(eps: float, step: float, steps: int, random_start: bool = True) -> Objective:
    """PGD adversarial training in the L2 ball."""
    check_budget(eps, step, steps)
    return AttackObjective(lambda m: _pgd_attack(m, eps, step, steps, "l2", random_start), name="pgd_l2")


def _pgd_attack(model: nn.Module, eps: float, step: float, steps: int, norm: str, random_start: bool):
    return lambda x, y: pgd(model, x, y, eps, step, steps, norm, start=random_start)


@OBJECTIVES.register("fgsm_rs")
def fgsm_rs(eps: float, step_scale: float = 1.25) -> Objective:
    """Wong et al. 2020 'fast' FGSM with a uniform random start, step = step_scale * eps."""
    check_budget(eps, step_scale * eps if eps > 0 else None)
    return AttackObjective(lambda m: torchattacks.FFGSM(m, eps=eps, alpha=step_scale * eps), name="fgsm_rs")


def trades_loss(clean_logits: Tensor, adv_logits: Tensor, y: Tensor, beta: float) -> Tensor:
    """Zhang et al. 2019, eq. 5, per example: CE(f(x), y) + beta * KL(p(x) || p(x_adv))."""
    kl = F.kl_div(F.log_softmax(adv_logits, dim=1), F.softmax(clean_logits, dim=1), reduction="none").sum(1)
    return F.cross_entropy(clean_logits, y, reduction="none") + beta * kl


class Trades(AttackObjective):
    """TRADES (Zhang et al. 2019): CE(f(x), y) + beta * KL(p(x) || p(x_adv)).

    The inner maximisation is torchattacks' TPGD (KL ascent from x + 0.001 N(0, I)). As a function
    of the point, the loss moves x and x_adv together (``delta = x_adv - x`` fixed), so its input
    gradient is the total derivative of both terms and a regulariser penalises the whole objective.
    """

    name = "trades"

    def __init__(self, eps: float, step: float, steps: int, beta: float):
        super().__init__(lambda m: torchattacks.TPGD(m, eps=eps, alpha=step, steps=int(steps)))
        self.beta = beta

    def training_loss(self, model: nn.Module, x: Tensor, y: Tensor) -> TrainingLoss:
        delta = self.perturb(model, x, y) - x

        def at(z: Tensor) -> LossAt:
            clean_logits, adv_logits = model(z), model(z + delta)
            return LossAt(trades_loss(clean_logits, adv_logits, y, self.beta), clean_logits, adv_logits)

        return TrainingLoss(x, at)


@OBJECTIVES.register("trades")
def trades(eps: float, step: float, steps: int, beta: float = 6.0) -> Objective:
    check_budget(eps, step, steps)
    if beta < 0:
        raise ValueError(f"adv.beta must be >= 0 (got {beta})")
    return Trades(eps, step, steps, beta)


def build_objective(name: str, **kwargs) -> Objective:
    return OBJECTIVES.build("adv", name, **kwargs)
