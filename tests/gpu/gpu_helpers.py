"""Shared pieces of the device tests: the device parametrisation, tolerances and a tiny network.

Every test here takes a ``device`` parameter: ``"cpu"`` runs everywhere (the test logic is proven on
a CPU, with ``channels_last`` or ``bf16-mixed`` as the second route where the device alone would
compare the CPU with itself); ``"cuda"`` carries the ``gpu`` marker and is skipped, with its reason,
where ``torch.cuda.is_available()`` is False. ``pytest -m gpu`` runs only the CUDA cases.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rxlit.models.normalize import Normalize

NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU: torch.cuda.is_available() is False")
CUDA = pytest.param("cuda", marks=[pytest.mark.gpu, NEEDS_CUDA], id="cuda")
DEVICES = ["cpu", CUDA]

# Float tolerances of a value computed on two devices (or two memory layouts) from the same weights
# and the same keyed noise: |got - expected| <= rtol |expected| + atol * max |expected| (the absolute
# part is relative to the largest entry, so tiny entries of an explanation do not fail on rounding).
# Two float64 implementations agree to ~1e-15 relative; 1e-7 leaves room for cancellation in
# differences of model outputs (infidelity, faithfulness) and still catches any change of noise,
# layout or device placement, which moves a value by O(1). Float32 implementations agree to ~1e-6
# (measured on the CPU, channels_last vs contiguous: 1.1e-6 at worst, infidelity of SmoothGrad);
# 1e-3 is far above that and far below what a bug changes. TF32 is off in these tests
# (tests/gpu/conftest.py): with it, cuDNN convolutions round inputs to 10 mantissa bits.
TOLERANCE = {torch.float64: {"rtol": 1e-7, "atol": 1e-10}, torch.float32: {"rtol": 1e-3, "atol": 1e-5}}


def assert_close(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """``got`` (any device) equals the CPU ``expected`` within :data:`TOLERANCE` of its dtype."""
    tol = TOLERANCE[expected.dtype]
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    torch.testing.assert_close(got.cpu(), expected, rtol=tol["rtol"], atol=tol["atol"] * scale,
                               msg=lambda m: f"{what}: {m}")


def tiny_net(dtype: torch.dtype = torch.float64, classes: int = 4) -> nn.Module:
    """Normalisation, two convolutions with BatchNorm (random running statistics, eval mode), ReLU
    (guided backprop needs it), max-pooling and a linear head, on (B, 3, 8, 8) inputs."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = nn.Sequential(
        Normalize([0.5, 0.4, 0.3], [0.25, 0.3, 0.2]),
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 4 * 4, classes),
    )
    for bn in (net[2], net[6]):
        bn.running_mean.copy_(0.4 * torch.rand(8, generator=generator) - 0.2)
        bn.running_var.copy_(0.5 + 1.5 * torch.rand(8, generator=generator))
    return net.to(dtype).eval()


def inputs(dtype: torch.dtype = torch.float64, batch: int = 4) -> torch.Tensor:
    return torch.rand(batch, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=dtype)


def on(device: str, net: nn.Module, x: torch.Tensor, channels_last: bool) -> tuple[nn.Module, torch.Tensor]:
    """The network and inputs moved to ``device`` (copies), in the channels-last layout if asked."""
    import copy

    net, x = copy.deepcopy(net).to(device), x.to(device)
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    return net, x


def routes(device: str) -> list[bool]:
    """``channels_last`` settings compared with the contiguous CPU reference: on the CPU only the
    channels-last layout is a second route; on a GPU both layouts are."""
    return [True] if device == "cpu" else [False, True]
