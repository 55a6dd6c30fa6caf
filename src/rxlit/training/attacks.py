"""Adversarial attacks for training and evaluation, built once and called as ``adv = atk(x, y)``.

Thin wrappers over torchattacks (inputs in [0, 1], normalisation inside the model, as in
DESIGN.md). torchattacks puts the model in eval mode while attacking, so BatchNorm uses its
running statistics and dropout is off, and restores the previous mode afterwards.
"""

from __future__ import annotations

import torchattacks
from torch import nn


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
