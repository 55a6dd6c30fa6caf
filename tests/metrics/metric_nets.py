"""Tiny closed-form and trained models for the metric tests (float64, 8x8 inputs)."""

from __future__ import annotations

import torch
from torch import nn

from rxlit import rng
from rxlit.explain.passes import input_gradient


class Linear(nn.Module):
    """f(x) = theta^T x (one logit), or two logits (theta, -theta)."""

    def __init__(self, theta: torch.Tensor, two: bool = False):
        super().__init__()
        self.theta, self.two = nn.Parameter(theta.reshape(-1)), two

    def forward(self, x):
        f = x.flatten(1) @ self.theta
        return torch.stack([f, -f], 1) if self.two else f.unsqueeze(1)


class Quadratic(nn.Module):
    """f(x) = x^T A x / 2 (one logit); grad f = A x for symmetric A, Hessian A."""

    def __init__(self, A: torch.Tensor):
        super().__init__()
        self.A = nn.Parameter(A)

    def forward(self, x):
        v = x.flatten(1)
        return (0.5 * ((v @ self.A) * v).sum(1)).unsqueeze(1)


def mlp(d: int = 64, hidden: int = 32, classes: int = 3) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes)).double()


def blobs(n: int, generator: torch.Generator, classes: int = 3):
    """Images 1x8x8 in [0, 1]: class c brightens a band of rows, plus noise."""
    y = torch.randint(0, classes, (n,), generator=generator)
    x = 0.3 + 0.1 * torch.randn(n, 1, 8, 8, generator=generator, dtype=torch.float64)
    for c in range(classes):  # three classes: a tiny loop over classes, not examples
        x[y == c, :, 2 * c:2 * c + 3] += 0.4
    return x.clamp(0, 1), y


def smoothgrad_local(model, x, target, *, sigma: float = 0.1, n_samples: int = 16, generator=None,
                     output: str = "logit", chunk_size=None):
    """Test stand-in for SmoothGrad: mean gradient at x + sigma z, keyed per example."""
    B, n = x.shape[0], n_samples
    z = rng.normal(generator, B, (n, *x.shape[1:]), device=x.device, dtype=x.dtype)
    points = (x.unsqueeze(1) + sigma * z).flatten(0, 1)
    g = input_gradient(model, points, target.repeat_interleave(n), output)
    return g.view(B, n, *x.shape[1:]).mean(1)


def digits_model(name: str = "mlp", seed: int = 0, steps: int = 150, **options) -> tuple[nn.Module, torch.Tensor,
                                                                                           torch.Tensor]:
    """A digits backbone (rxlit's factory, normalisation included) trained ``steps`` full-batch Adam
    steps on the digits train split; returns (model in eval mode, test images, test labels)."""
    from rxlit.data.digits import DigitsDataModule
    from rxlit.models.factory import build_model

    dm = DigitsDataModule(seed=0)
    dm.setup("fit")
    train, test = dm.split("train"), dm.split("test")
    x, y = train.images[train.indices], train.targets
    torch.manual_seed(seed)
    model = build_model(name, num_classes=10, in_chans=1, image_size=8, mean=dm.mean, std=dm.std, **options)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    return model, test.images[test.indices], test.targets
