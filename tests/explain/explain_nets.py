"""Tiny float64 models for the explanation tests (2 CPU cores: keep them small)."""

import torch
from torch import nn


def tiny_cnn(in_chans: int = 3, size: int = 8, classes: int = 5, act=nn.ReLU, seed: int = 0) -> nn.Module:
    """Two convolutions and a linear head on (B, in_chans, size, size), float64, eval mode."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(in_chans, 4, 3, padding=1), act(),
        nn.Conv2d(4, 4, 3, padding=1, stride=2), act(),
        nn.Flatten(), nn.Linear(4 * (size // 2) ** 2, classes),
    )
    return model.double().eval()


def tiny_mlp(dim: int, classes: int = 3, act=nn.Tanh, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(dim, 16), act(), nn.Linear(16, classes)).double().eval()
