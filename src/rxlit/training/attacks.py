"""Adversarial attacks for training and evaluation, built once and called as ``adv = atk(x, y)``.

Thin wrappers over torchattacks (inputs in [0, 1], normalisation inside the model, the project-wide
convention of docs/theory.md). torchattacks puts the model in eval mode while attacking, so BatchNorm uses its
running statistics and dropout is off, and restores the previous mode afterwards.
"""

from __future__ import annotations

import torchattacks
from torch import nn

NORMS = ("linf", "l2")
EVAL_ATTACKS = ("pgd", "autoattack")
# Madry et al. (2018): a step of 2.5 eps / steps lets PGD reach the edge of the ball from any start.
STEP_FACTOR = 2.5


def check_budget(eps: float, step: float | None = None, steps: int | None = None, prefix: str = "adv") -> None:
    """Refuse impossible attack budgets before any training starts."""
    if eps is None or eps < 0:
        raise ValueError(f"{prefix}.eps must be >= 0 (got {eps}); e.g. {prefix}.eps=0.03137 for 8/255")
    if step is not None and step <= 0:
        raise ValueError(f"{prefix}.step must be > 0 (got {step})")
    if steps is not None and int(steps) < 1:
        raise ValueError(f"{prefix}.steps must be >= 1 (got {steps})")


def pgd(model: nn.Module, eps: float, step: float, steps: int, norm: str = "linf", random_start: bool = True):
    """Projected gradient descent (Madry et al. 2018) in the L-inf or L2 ball."""
    check_budget(eps, step, steps)
    if norm == "linf":
        return torchattacks.PGD(model, eps=eps, alpha=step, steps=int(steps), random_start=random_start)
    if norm == "l2":
        return torchattacks.PGDL2(model, eps=eps, alpha=step, steps=int(steps), random_start=random_start)
    raise ValueError(f"unknown attack norm {norm!r}; valid: 'linf', 'l2'")


def autoattack(model: nn.Module, eps: float, norm: str, n_classes: int, seed: int = 0):
    """Standard AutoAttack (Croce & Hein 2020: APGD-CE, APGD-T, FAB-T, Square), torchattacks' port."""
    check_budget(eps, prefix="eval_attack")
    if n_classes < 4:
        raise ValueError(f"AutoAttack needs at least 4 classes (its targeted attacks use the 4 largest logits); "
                         f"this model has {n_classes}: set eval_attack.test_attack=pgd")
    return torchattacks.AutoAttack(model, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, version="standard",
                                   n_classes=n_classes, seed=seed)


def eval_attack_spec(spec: dict, budget: dict | None, adv_name: str = "none") -> dict:
    """The evaluation attack with its defaults filled in and checked, before training starts.

    ``norm: null`` follows the training objective (``l2`` for ``adv=pgd_l2``, else ``linf``);
    ``eps: null`` is the data set's budget for that norm (``data.attack.eps`` or ``eps_l2``);
    ``step: null`` is 2.5 eps / steps (Madry et al.), so the attack can reach the edge of the
    ball from its start. A step too small to reach the edge (steps x step < eps) is refused: the
    reported robust accuracy would overstate robustness. ``test_attack`` is the attack behind
    ``test/adv_acc``: ``pgd`` (the same attack as ``val/adv_acc``) or ``autoattack`` (standard).
    """
    out = {"n_examples": 0, "norm": None, "eps": None, "steps": 10, "step": None, "test_attack": "pgd", **spec}
    if int(out["n_examples"] or 0) <= 0:
        return {**out, "n_examples": 0}
    norm = out["norm"] or ("l2" if adv_name == "pgd_l2" else "linf")
    if norm not in NORMS:
        raise ValueError(f"eval_attack.norm must be one of {', '.join(NORMS)} or null (follow adv=), got {norm!r}")
    eps = out["eps"]
    if eps is None:
        key = "eps_l2" if norm == "l2" else "eps"
        if not budget or budget.get(key) is None:
            raise ValueError(f"eval_attack.eps is null and the data set has no attack.{key}: set eval_attack.eps")
        eps = float(budget[key])
    if eps <= 0:
        raise ValueError(f"eval_attack.eps must be > 0 (got {eps}); eval_attack.n_examples=0 turns the attack off")
    steps = int(out["steps"])
    check_budget(eps, out["step"], steps, prefix="eval_attack")
    step = STEP_FACTOR * eps / steps if out["step"] is None else float(out["step"])
    if steps * step < eps * (1 - 1e-6):
        raise ValueError(f"eval_attack.steps x eval_attack.step = {steps} x {step:g} = {steps * step:g} < eps {eps:g}: "
                         "the attack cannot reach the edge of the ball and adv_acc would overstate robustness. "
                         f"Set eval_attack.step=null ({STEP_FACTOR} eps / steps) or more eval_attack.steps")
    if out["test_attack"] not in EVAL_ATTACKS:
        raise ValueError(f"eval_attack.test_attack must be one of {', '.join(EVAL_ATTACKS)}, got {out['test_attack']!r}")
    return {**out, "norm": norm, "eps": eps, "steps": steps, "step": step}
