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


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: with two intra-op threads, OpenMP barriers stall
    whenever another job holds a core (a small forward-backward went from 0.01 s to 1 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
