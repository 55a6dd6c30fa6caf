"""Tiny closed-form and trained models for the metric tests (float64, 8x8 inputs)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rxlit import rng
from rxlit.explain.core import METHODS, input_gradient


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


@pytest.fixture(autouse=True, scope="package")
def one_thread():
    """Tiny models run fastest on one thread (and the CI machine is shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def trained():
    """A 64-32-32-3 ReLU MLP trained 150 Adam steps on :func:`blobs`; returns (model, x, y)."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = mlp()
    x, y = blobs(256, g)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    x_test, y_test = blobs(32, g)
    return model, x_test, y_test


def smoothgrad_local(model, x, target, *, sigma: float = 0.1, n_samples: int = 16, generator=None,
                     output: str = "logit", chunk_size=None):
    """Test stand-in for SmoothGrad: mean gradient at x + sigma z, keyed per example."""
    B, n = x.shape[0], n_samples
    z = rng.normal(generator, B, (n, *x.shape[1:]), device=x.device, dtype=x.dtype)
    points = (x.unsqueeze(1) + sigma * z).flatten(0, 1)
    g = input_gradient(model, points, target.repeat_interleave(n), output)
    return g.view(B, n, *x.shape[1:]).mean(1)


@pytest.fixture
def smoothgrad():
    """rxlit's SmoothGrad when it is registered, else the local stand-in (same keyed noise API)."""
    return "smoothgrad" if "smoothgrad" in METHODS else smoothgrad_local
