"""Divergence is an error, not a finished run.

A run whose loss explodes (a deep ResNet or a transformer at a learning rate meant for a small CNN)
used to finish with ``status: finished`` and fill the explanation tables with numbers such as a
local Lipschitz of 1e8 that mean nothing. :class:`DivergenceGuard` watches the training loss step by
step: it is diverged when the loss is NaN/inf, or when its running mean (an exponential moving
average over about 10 steps) exceeds ``factor`` times its starting value, where the starting value
is the larger of ln(num_classes) (the loss of a uniform prediction) and the mean of the first
``warmup_steps`` losses. The run then stops inside ``training_step``, before the bad update and
before that epoch's evaluation, so ``last.ckpt`` is the last good epoch.
"""

from __future__ import annotations

import math


class NonFiniteLossError(FloatingPointError):
    """Raised when training diverges (NaN/inf or exploding loss); the last good checkpoint is kept."""


class DivergenceGuard:
    """Per-step divergence test of the training loss (see the module docstring)."""

    def __init__(self, num_classes: int, factor: float = 4.0, warmup_steps: int = 1, momentum: float = 0.9):
        if factor <= 1:
            raise ValueError(f"divergence.factor must be > 1, got {factor}")
        self.floor = math.log(max(int(num_classes), 2))
        self.factor, self.warmup_steps, self.momentum = float(factor), int(warmup_steps), float(momentum)
        self.first: list[float] = []
        self.running: float | None = None

    @property
    def reference(self) -> float:
        start = sum(self.first) / len(self.first) if self.first else 0.0
        return max(self.floor, start)

    def update(self, loss: float) -> str | None:
        """Feed one step's loss; returns why the run diverged, or None."""
        if not math.isfinite(loss):
            return "became NaN/inf"
        if len(self.first) < self.warmup_steps:
            self.first.append(loss)
        self.running = loss if self.running is None else self.momentum * self.running + (1 - self.momentum) * loss
        if self.running > self.factor * self.reference:
            return (f"exploded: its running mean {self.running:.4g} is more than {self.factor:g}x its starting "
                    f"value {self.reference:.4g}")
        return None

    def state_dict(self) -> dict:
        return {"first": list(self.first), "running": self.running}

    def load_state_dict(self, state: dict) -> None:
        self.first = [float(v) for v in state.get("first", [])]
        self.running = state.get("running")


def divergence_message(reason: str, epoch: int, step: int, optim: dict) -> str:
    return (f"the training loss {reason} at epoch {epoch}, step {step}; training stopped before the bad "
            "update, so the last checkpoint (last.ckpt) is the last good epoch and no evaluation of the "
            f"diverged model was logged. Fix: lower optim.lr (now {optim.get('lr')}), add warm-up "
            "(sched.warmup_epochs=2), use the backbone's recipe (docs/models.md: e.g. AdamW for ViT/Swin), or "
            "set trainer.gradient_clip_val=1.0; then resume with ckpt_path=<checkpoint dir>/last.ckpt.")
