"""Random numbers that do not depend on batch composition, chunk size or DDP rank.

Explanation methods and metrics draw their noise through :func:`normal` and :func:`uniform`.
The ``generator`` they receive may be

* ``None``: torch's global generator;
* a ``torch.Generator``: one stream for the whole batch (Captum-style determinism);
* an :class:`ExampleRNG`: a counter-based generator keyed by (seed, example index, epoch).
  Example ``i``'s samples are a pure function of that key, so a metric value is the same
  whether the example sits in a batch of 1 or 32, in chunk 1 or 1000, on rank 0 or rank 3.

The counter-based hash is Wellons' ``lowbias32``, evaluated with in-place int32 tensor
arithmetic in blocks (cache-sized on the CPU, large on accelerators), so it runs vectorised on any
device with no Python loop over examples or samples, at about the cost of ``torch.randn``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

_MASK = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9
_M1, _M2 = 0x7FEB352D, 0x846CA68B  # lowbias32 multipliers
_BLOCK = 1 << 16  # elements hashed at a time on the CPU: the working set stays in the L2 cache
_DEVICE_BLOCK = 1 << 22  # on accelerators: few kernel launches matter more than caches


def block_size(device: torch.device) -> int:
    return _BLOCK if device.type == "cpu" else _DEVICE_BLOCK


def _mix32(x: Tensor) -> Tensor:
    """lowbias32 integer hash on values held in int64 (products wrap; low 32 bits are exact)."""
    x = x & _MASK
    x = x ^ (x >> 16)
    x = (x * _M1) & _MASK
    x = x ^ (x >> 15)
    x = (x * _M2) & _MASK
    return x ^ (x >> 16)


def _mix_int(value: int) -> int:
    return int(_mix32(torch.tensor([value & _MASK], dtype=torch.int64))[0])


def _signed32(value: int) -> int:
    """The int32 with the same low 32 bits as ``value`` (int32 products wrap like uint32 ones)."""
    value &= _MASK
    return value - (1 << 32) if value >= 1 << 31 else value


def _mix32_(x: Tensor, tmp: Tensor) -> Tensor:
    """:func:`_mix32` in place on int32 bit patterns (same bits as the int64 version).

    int32 arithmetic is 2-4x faster than int64 and in place nothing is allocated; ``>>`` on
    int32 is arithmetic, so the masks after each shift make it the logical shift of uint32.
    """
    x ^= torch.bitwise_right_shift(x, 16, out=tmp).bitwise_and_(0xFFFF)
    x *= _signed32(_M1)
    x ^= torch.bitwise_right_shift(x, 15, out=tmp).bitwise_and_(0x1FFFF)
    x *= _signed32(_M2)
    x ^= torch.bitwise_right_shift(x, 16, out=tmp).bitwise_and_(0xFFFF)
    return x


def blocks(rows: int, count: int, block: int = _BLOCK):
    """(row slice, column slice) pairs tiling a (rows, count) grid in blocks of at most
    ``block`` elements (a memory tiling, not a loop over examples or samples)."""
    cols = max(1, min(count, block))
    per = max(1, block // cols)
    for r0 in range(0, rows, per):
        for c0 in range(0, count, cols):
            yield slice(r0, min(rows, r0 + per)), slice(c0, min(count, c0 + cols))


class _Hasher:
    """``h(key, c) = mix(mix(c ^ key) + 3 key + C)`` on blocks of (rows, counters), with reused
    int32 scratch buffers so nothing large is allocated and every block stays in cache."""

    def __init__(self, keys: Tensor):
        keys = keys.reshape(-1) & _MASK
        self.key = torch.where(keys >= 1 << 31, keys - (1 << 32), keys).to(torch.int32).view(-1, 1)
        self.salt = self.key * 3 + _signed32(0x165667B1)
        self.size = block_size(keys.device)
        self.scratch = torch.empty(2 * min(self.size, _BLOCK), dtype=torch.int32, device=keys.device)

    def block(self, rows: slice, start: int, stop: int) -> Tensor:
        """int32 hashes (rows, stop - start) of counters ``start .. stop - 1`` (< 2**31), in the
        scratch buffer when it fits: valid until the next call."""
        shape = (rows.stop - rows.start, stop - start)
        size = shape[0] * shape[1]
        half = self.scratch.numel() // 2
        if size > half:  # accelerator blocks: fresh buffers (allocation is cheap there)
            out = torch.empty(shape, dtype=torch.int32, device=self.key.device)
            tmp = torch.empty_like(out)
        else:
            out, tmp = self.scratch[:size].view(shape), self.scratch[half:half + size].view(shape)
        counter = torch.arange(start, stop, dtype=torch.int32, device=self.key.device).view(1, -1)
        torch.bitwise_xor(counter, self.key[rows], out=out)
        _mix32_(out, tmp)
        out += self.salt[rows]
        return _mix32_(out, tmp)


def hash_counters(keys: Tensor, start: int, count: int) -> Tensor:
    """int32 bit patterns (R, count) of the counters ``start .. start + count - 1`` of every key
    (R,): about 2x the cost of ``torch.rand`` (blocked, in-place int32 arithmetic)."""
    hasher = _Hasher(keys)
    out = torch.empty(keys.numel(), count, dtype=torch.int32, device=keys.device)
    for rows, cols in blocks(keys.numel(), count, hasher.size):
        out[rows, cols] = hasher.block(rows, start + cols.start, start + cols.stop)
    return out


def _to_unit(bits: Tensor, dtype=torch.float32) -> Tensor:
    """Top 24 bits of int32 hashes -> uniforms in (0, 1), never 0 or 1."""
    u = torch.bitwise_right_shift(bits, 8).bitwise_and_(0xFFFFFF).to(dtype)
    return u.add_(0.5).mul_(1.0 / 16777216.0)


class ExampleRNG:
    """Counter-based random stream keyed by (seed, example index, epoch).

    Every call of :meth:`normal` / :meth:`uniform` advances a stream counter, so successive
    draws are independent; two ``ExampleRNG`` built with the same key and called in the same
    order give identical numbers for each example regardless of which other examples are present.
    """

    def __init__(self, seed: int, index: Tensor | Sequence[int], epoch: int = 0, stream: int = 0):
        self.seed = int(seed)
        # Keys live on the CPU (one per example): the metrics combine them with CPU counters, and
        # each draw moves its hashed keys to the requested device, so an index given on a GPU works.
        self.index = torch.as_tensor(index, dtype=torch.int64).reshape(-1).cpu()
        self.epoch = int(epoch)
        self.stream = int(stream)

    def __len__(self) -> int:
        return self.index.numel()

    def __repr__(self) -> str:
        return f"ExampleRNG(seed={self.seed}, n={len(self)}, epoch={self.epoch}, stream={self.stream})"

    def subset(self, rows: Tensor | slice) -> ExampleRNG:
        """The generator of a subset of the examples, at the same stream position."""
        rows = rows.cpu() if isinstance(rows, Tensor) else rows
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

    def _hasher(self, device: torch.device) -> _Hasher:
        """The hashes of this draw; advances the stream so the next draw is independent."""
        self.stream += 1
        return _Hasher(self._keys(device))

    def uniform(self, shape: Sequence[int], device=None, dtype=torch.float32) -> Tensor:
        numel = math.prod(shape)
        hasher = self._hasher(torch.device(device or "cpu"))
        out = torch.empty(len(self), numel, dtype=dtype, device=device)
        for rows, cols in blocks(len(self), numel, hasher.size):
            out[rows, cols] = _to_unit(hasher.block(rows, cols.start, cols.stop), dtype)
        return out.view(len(self), *shape)

    def normal(self, shape: Sequence[int], device=None, dtype=torch.float32) -> Tensor:
        """Box-Muller on two uniform halves, using both the cosine and the sine output (one hash
        per number): element ``i < ceil(numel / 2)`` is ``r cos``, element ``ceil(numel/2) + i``
        is ``r sin`` of the same pair, which are independent standard normals. Computed block by
        block (the transcendental functions are several times faster on cache-resident data)."""
        numel = math.prod(shape)
        half = (numel + 1) // 2
        hasher = self._hasher(torch.device(device or "cpu"))
        out = torch.empty(len(self), 2 * half, dtype=torch.float32, device=device)
        for rows, cols in blocks(len(self), half, hasher.size):
            radius = _to_unit(hasher.block(rows, cols.start, cols.stop)).log_().mul_(-2.0).sqrt_()
            angle = _to_unit(hasher.block(rows, half + cols.start, half + cols.stop)).mul_(2.0 * math.pi)
            out[rows, cols] = torch.cos(angle).mul_(radius)
            out[rows, half + cols.start:half + cols.stop] = torch.sin(angle).mul_(radius)
        return out[:, :numel].to(dtype).reshape(len(self), *shape)


Generator = torch.Generator | ExampleRNG | None


def _noise(generator: Generator, batch: int, shape: Sequence[int], device, dtype, per_example, shared) -> Tensor:
    """Noise of shape (batch, *shape): ``per_example`` (an ExampleRNG method) draws each example's
    from its key; ``shared`` (``torch.randn``/``torch.rand``) draws the batch from a torch.Generator
    (on the generator's device) or from the global one."""
    shape = tuple(int(s) for s in shape)
    if isinstance(generator, ExampleRNG):
        if len(generator) != batch:
            raise ValueError(f"ExampleRNG holds {len(generator)} example keys but the batch has {batch} examples")
        return per_example(generator, shape, device=device, dtype=dtype)
    gen_device = generator.device if isinstance(generator, torch.Generator) else device
    out = shared((batch, *shape), generator=generator, device=gen_device, dtype=dtype)
    return out.to(device) if device is not None else out


def normal(generator: Generator, batch: int, shape: Sequence[int], device=None, dtype=torch.float32) -> Tensor:
    """Standard normal noise of shape (batch, *shape)."""
    return _noise(generator, batch, shape, device, dtype, ExampleRNG.normal, torch.randn)


def uniform(generator: Generator, batch: int, shape: Sequence[int], device=None, dtype=torch.float32) -> Tensor:
    """Uniform [0, 1) noise of shape (batch, *shape)."""
    return _noise(generator, batch, shape, device, dtype, ExampleRNG.uniform, torch.rand)


def subset(generator: Generator, rows: Tensor | slice) -> Generator:
    """Restrict an ExampleRNG to some examples; other generators are shared as they are."""
    return generator.subset(rows) if isinstance(generator, ExampleRNG) else generator


def spawn(generator: Generator) -> Generator:
    """A child stream for a nested random procedure (e.g. SmoothGrad inside local Lipschitz)."""
    return generator.spawn() if isinstance(generator, ExampleRNG) else generator
