"""Shared fixtures for the model tests: built models are cached, inputs are tiny (batch 2)."""

from __future__ import annotations

import functools

import pytest
import torch

from rxlit.models import BACKBONES, build_model

# The two shapes every backbone must handle: 8x8 grey digits and 32x32 colour CIFAR.
SHAPES = {"digits": (1, 8), "cifar": (3, 32)}
NUM_CLASSES = 10
# 23-46M parameters: the shared shape tests run them on digits only; their 32x32 forward and the
# RobustBench parameter names are checked in test_robustbench_architectures.py.
HEAVY = {"wrn28_10", "wrn34_10", "cifar_resnet50"}


@functools.cache
def _cached_model(name: str, in_chans: int, size: int):
    torch.manual_seed(0)
    mean, std = [0.5] * in_chans, [0.25] * in_chans
    return build_model(name, NUM_CLASSES, in_chans, size, mean, std)


def _images(in_chans: int, size: int, requires_grad: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(2, in_chans, size, size, generator=gen).requires_grad_(requires_grad)


@pytest.fixture
def cached_model():
    """``cached_model(name, in_chans, size)``: one model per key for the whole session.

    Tests that use it set train/eval themselves and must not change its weights.
    """
    return _cached_model


@pytest.fixture
def images():
    """``images(in_chans, size, requires_grad=False)``: a fixed batch of two [0, 1] images."""
    return _images


@pytest.fixture(params=BACKBONES.names())
def backbone_name(request) -> str:
    return request.param


@pytest.fixture(params=list(SHAPES), ids=list(SHAPES))
def shape(request) -> tuple[int, int]:
    if request.param == "cifar" and request.node.callspec.params.get("backbone_name") in HEAVY:
        pytest.skip("heavy backbone: 32x32 covered by test_robustbench_architectures.py")
    return SHAPES[request.param]
