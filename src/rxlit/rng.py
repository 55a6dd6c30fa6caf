"""Random numbers that do not depend on batch composition, chunk size or DDP rank.

Explanation methods and metrics draw their noise through :func:`normal` and :func:`uniform`.
The ``generator`` they receive may be

* ``None``: torch's global generator;
* a ``torch.Generator``: one stream for the whole batch (Captum-style determinism);
* an :class:`ExampleRNG`: a counter-based generator keyed by (seed, example index, epoch).
  Example ``i``'s samples are a pure function of that key, so a metric value is the same
  whether the example sits in a batch of 1 or 32, in chunk 1 or 1000, on rank 0 or rank 3.

The counter-based hash is Wellons' ``lowbias32`` evaluated in int64 tensors, so it runs
vectorised on any device with no Python loop over examples or samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

_MASK = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def _mix32(x: Tensor) -> Tensor:
    """lowbias32 integer hash on values held in int64 (products wrap; low 32 bits are exact)."""
    x = x & _MASK
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK
    return x ^ (x >> 16)


def _mix_int(value: int) -> int:
    return int(_mix32(torch.tensor([value & _MASK], dtype=torch.int64))[0])


class ExampleRNG:
    """Counter-based random stream keyed by (seed, example index, epoch).

    Every call of :meth:`normal` / :meth:`uniform` advances a stream counter, so successive
    draws are independent; two ``ExampleRNG`` built with the same key and called in the same
    order give identical numbers for each example regardless of which other examples are present.
    """

    def __init__(self, seed: int, index: Tensor | Sequence[int], epoch: int = 0, stream: int = 0):
        self.seed = int(seed)
        self.index = torch.as_tensor(index, dtype=torch.int64).reshape(-1)
        self.epoch = int(epoch)
        self.stream = int(stream)

    def __len__(self) -> int:
        return self.index.numel()

    def __repr__(self) -> str:
        return f"ExampleRNG(seed={self.seed}, n={len(self)}, epoch={self.epoch}, stream={self.stream})"

    def subset(self, rows: Tensor | slice) -> ExampleRNG:
        """The generator of a subset of the examples, at the same stream position."""
        return ExampleRNG(self.seed, self.index[rows], self.epoch, self.stream)

    def spawn(self) -> ExampleRNG:
        """An independent child stream (for a method called inside a metric)."""
        self.stream += 1
        return ExampleRNG(self.seed, self.index, self.epoch, _mix_int(self.stream * 7919 + 17) + 1_000_003)

    def _keys(self, device: torch.device) -> Tensor:
        key = _mix32(torch.tensor(self.seed, dtype=torch.int64) + _GOLDEN)
        key = _mix32(key ^ _mix32(torch.tensor(self.epoch, dtype=torch.int64) + 0x632BE5AB))
        key = _mix32(key ^ ((self.stream * 0x85EBCA6B) & _MASK))  # masked: no int64 overflow
        keys = _mix32(key ^ _mix32(self.index + 0x27D4EB2F))
        return keys.to(device)

    def _bits(self, shape: Sequence[int], device: torch.device, lanes: int) -> Tensor:
        """Hashes of shape (B, lanes, *shape): one independent 32-bit word per lane and element."""
        self.stream += 1
        numel = math.prod(shape)
        keys = self._keys(device).view(-1, 1, 1)
        counter = torch.arange(lanes * numel, device=device, dtype=torch.int64).view(1, lanes, numel)
        bits = _mix32(_mix32(counter ^ keys) + keys * 3 + 0x165667B1)
        return bits.view(len(self), lanes, *shape)

    def uniform(self, shape: Sequence[int], device=None, dtype=torch.float32) -> Tensor:
        bits = self._bits(shape, torch.device(device or "cpu"), 1)[:, 0]
        return ((bits >> 8).to(dtype) + 0.5) * (1.0 / 16777216.0)

    def normal(self, shape: Sequence[int], device=None, dtype=torch.float32) -> Tensor:
        bits = self._bits(shape, torch.device(device or "cpu"), 2)
        u1 = ((bits[:, 0] >> 8).to(torch.float32) + 0.5) * (1.0 / 16777216.0)
        u2 = ((bits[:, 1] >> 8).to(torch.float32) + 0.5) * (1.0 / 16777216.0)
        z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
        return z.to(dtype)


Generator = torch.Generator | ExampleRNG | None


def _check_batch(generator: ExampleRNG, batch: int) -> None:
    if len(generator) != batch:
        raise ValueError(f"ExampleRNG holds {len(generator)} example keys but the batch has {batch} examples")


def normal(generator: Generator, batch: int, shape: Sequence[int], device=None, dtype=torch.float32) -> Tensor:
    """Standard normal noise of shape (batch, *shape)."""
    shape = tuple(int(s) for s in shape)
    if isinstance(generator, ExampleRNG):
        _check_batch(generator, batch)
        return generator.normal(shape, device=device, dtype=dtype)
    gen_device = generator.device if isinstance(generator, torch.Generator) else device
    out = torch.randn((batch, *shape), generator=generator, device=gen_device, dtype=dtype)
    return out.to(device) if device is not None else out


def uniform(generator: Generator, batch: int, shape: Sequence[int], device=None, dtype=torch.float32) -> Tensor:
    """Uniform [0, 1) noise of shape (batch, *shape)."""
    shape = tuple(int(s) for s in shape)
    if isinstance(generator, ExampleRNG):
        _check_batch(generator, batch)
        return generator.uniform(shape, device=device, dtype=dtype)
    gen_device = generator.device if isinstance(generator, torch.Generator) else device
    out = torch.rand((batch, *shape), generator=generator, device=gen_device, dtype=dtype)
    return out.to(device) if device is not None else out


def subset(generator: Generator, rows: Tensor | slice) -> Generator:
    """Restrict an ExampleRNG to some examples; other generators are shared as they are."""
    return generator.subset(rows) if isinstance(generator, ExampleRNG) else generator


def spawn(generator: Generator) -> Generator:
    """A child stream for a nested random procedure (e.g. SmoothGrad inside local Lipschitz)."""
    return generator.spawn() if isinstance(generator, ExampleRNG) else generator
