"""Optimisers (SGD, Adam, AdamW) and per-epoch schedules (cosine, multistep, none) with warm-up."""

from __future__ import annotations

import math

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "multistep", "none")


def build_optimizer(params, name: str = "sgd", lr: float = 0.05, weight_decay: float = 5e-4,
                    momentum: float = 0.9, nesterov: bool = False, betas=(0.9, 0.999)) -> torch.optim.Optimizer:
    if lr <= 0:
        raise ValueError(f"optim.lr must be > 0 (got {lr})")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    raise ValueError(f"unknown optim.name {name!r}; valid: {', '.join(OPTIMIZERS)}")


def _milestone_epochs(milestones, max_epochs: int) -> list[int]:
    """Milestones below 1 are fractions of max_epochs (0.5 = half way); others are epochs."""
    return sorted(int(round(m * max_epochs)) if m < 1 else int(m) for m in milestones)


def lr_factor(epoch: int, name: str, max_epochs: int, warmup_epochs: int = 0,
              milestones=(0.5, 0.75), gamma: float = 0.1) -> float:
    """Multiplier of the base learning rate at the start of ``epoch`` (0-based)."""
    if warmup_epochs > 0 and epoch < warmup_epochs:
        return (epoch + 1) / (warmup_epochs + 1)
    if name == "cosine":
        span = max(1, max_epochs - warmup_epochs)
        return 0.5 * (1 + math.cos(math.pi * min(epoch - warmup_epochs, span) / span))
    if name == "multistep":
        return gamma ** sum(epoch >= m for m in _milestone_epochs(milestones, max_epochs))
    if name == "none":
        return 1.0
    raise ValueError(f"unknown sched.name {name!r}; valid: {', '.join(SCHEDULES)}")


def build_scheduler(optimizer: torch.optim.Optimizer, max_epochs: int, name: str = "cosine",
                    warmup_epochs: int = 0, milestones=(0.5, 0.75), gamma: float = 0.1):
    lr_factor(0, name, max_epochs, warmup_epochs, milestones, gamma)  # validates the name now
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: lr_factor(e, name, max_epochs, warmup_epochs, tuple(milestones), gamma))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and normalisation parameters (1-D tensors)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.dim() <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
