"""Fixtures for the metric tests (float64, 8x8 inputs)."""

from __future__ import annotations

import pytest
import torch
from metric_nets import blobs, digits_model, mlp, smoothgrad_local
from torch import nn

from rxlit.explain.registry import METHODS


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


@pytest.fixture
def smoothgrad():
    """rxlit's SmoothGrad when it is registered, else the local stand-in (same keyed noise API)."""
    return "smoothgrad" if "smoothgrad" in METHODS else smoothgrad_local


@pytest.fixture(scope="session")
def digits_mlp():
    """rxlit's digits MLP (256-256, ReLU) trained 60 full-batch Adam steps (~96% test accuracy);
    returns (model, 32 test images, their labels)."""
    model, x, y = digits_model("mlp", seed=0, steps=60)
    return model, x[:32], y[:32]
