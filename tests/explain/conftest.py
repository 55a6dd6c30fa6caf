"""Fixtures for the explanation tests (2 CPU cores: keep them small)."""

import pytest
import torch
from explain_nets import tiny_cnn


@pytest.fixture
def cnn():
    return tiny_cnn()


@pytest.fixture
def images():
    torch.manual_seed(1)
    return torch.rand(2, 3, 8, 8, dtype=torch.float64)


@pytest.fixture
def gen():
    return lambda seed=0: torch.Generator().manual_seed(seed)
