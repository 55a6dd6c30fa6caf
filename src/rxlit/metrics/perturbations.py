"""Perturbation laws and the keyed noise that drives them.

Every metric evaluates a *flattened* perturbation set: example ``e``'s ``n`` samples are rows
``e * n + j`` (``j < n``) of one large batch, evaluated chunk by chunk (see
:mod:`rxlit.metrics.engine`). The noise of a row comes from a :class:`FlatStream`:

* with an :class:`~rxlit.rng.ExampleRNG` the stream is keyed by (seed, epoch, spawned stream,
  ``index[e] * n + j``), so row ``(e, j)`` gets the same numbers whatever the batch
  composition, the chunk size or the number of DDP ranks;
* with a ``torch.Generator`` (or ``None``: torch's global one) chunks are drawn one after the
  other from that single stream (deterministic for a fixed batch and chunk size, as in Captum).

The same keying is handed to stochastic explanation methods (SmoothGrad, LIME) evaluated on the
perturbed rows, so a metric of a stochastic method is invariant end to end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from rxlit import rng
from rxlit.explain.features import grid_mask
from rxlit.explain.optimal import square_masks, square_table
from rxlit.rng import ExampleRNG, Generator


def resolve_generator(generator: Generator, batch: int, seed: int | None = None,
                      index: Tensor | Sequence[int] | None = None, epoch: int = 0) -> Generator:
    """The metric's generator: ``seed`` (+ ``index``, ``epoch``) builds an ExampleRNG.

    ``index`` defaults to ``0..batch-1``; pass the dataset indices of the examples to make values
    independent of batching (the evaluation callback does).
    """
    if seed is not None:
        if generator is not None:
            raise ValueError("pass either generator or seed, not both")
        index = torch.arange(batch) if index is None else torch.as_tensor(index).reshape(-1)
        if index.numel() != batch:
            raise ValueError(f"index has {index.numel()} entries but the batch has {batch} examples")
        return ExampleRNG(seed, index, epoch)
    if index is not None:
        raise ValueError("index is only used together with seed (it keys an ExampleRNG)")
    if isinstance(generator, ExampleRNG) and len(generator) != batch:
        raise ValueError(f"ExampleRNG holds {len(generator)} keys but the batch has {batch} examples")
    return generator


class FlatStream:
    """Random numbers for the rows of a flattened (examples x samples) perturbation set.

    ``repeat=True`` keys every sample of an example identically (common random numbers), which
    is what the inner noise of a stochastic method needs when its value at ``x`` and at nearby
    points should share noise.
    """

    def __init__(self, generator: Generator, batch: int, n_samples: int, repeat: bool = False):
        self.batch, self.n_samples = batch, n_samples
        if isinstance(generator, ExampleRNG):
            child = generator.spawn()  # a fresh stream: never reuses the parent's numbers
            keys = generator.index.repeat_interleave(n_samples)
            if not repeat:
                keys = keys * n_samples + torch.arange(n_samples).repeat(batch)
            self.generator: Generator = ExampleRNG(child.seed, keys, child.epoch, child.stream)
        else:
            self.generator = generator

    @property
    def keyed(self) -> bool:
        return isinstance(self.generator, ExampleRNG)

    def rows(self, rows: slice) -> Generator:
        """The generator of some rows, always at the same stream position (chunk invariance)."""
        return rng.subset(self.generator, rows)

    def normal(self, rows: slice, shape: Sequence[int], device=None, dtype=torch.float32) -> Tensor:
        return rng.normal(self.rows(rows), _length(rows), shape, device=device, dtype=dtype)

    def uniform(self, rows: slice, shape: Sequence[int], device=None, dtype=torch.float32) -> Tensor:
        return rng.uniform(self.rows(rows), _length(rows), shape, device=device, dtype=dtype)


def _length(rows: slice) -> int:
    return rows.stop - rows.start


# --- Neighbourhoods for robustness metrics: (x_rows, stream, rows) -> perturbed x_rows ----------

def neighbourhood(noise: str | Callable[[Tensor], Tensor], scale: float, clip: bool = False
                  ) -> Callable[[Tensor, FlatStream, slice], Tensor]:
    """Sampler of points near ``x``.

    ``"gaussian"``: ``x + scale * z``, ``z ~ N(0, I)`` (Tan & Tian's ``N(x, sigma^2 I)``);
    ``"uniform"``: uniform in the L-inf ball of radius ``scale`` (Yeh et al.; Captum's
    ``default_perturb_func``). A callable ``fn(x_rows) -> x_perturbed`` is used as it is
    (Captum's ``perturb_func`` convention). ``clip`` projects onto the [0, 1] image box; off by
    default, as in the papers and in Captum/Quantus.
    """
    def sample(x: Tensor, stream: FlatStream, rows: slice) -> Tensor:
        if callable(noise):
            out = noise(x)
        elif noise == "gaussian":  # in place on the fresh noise: one pass over the chunk
            out = stream.normal(rows, x.shape[1:], x.device, x.dtype).mul_(scale).add_(x)
        elif noise == "uniform":
            out = stream.uniform(rows, x.shape[1:], x.device, x.dtype).mul_(2 * scale).sub_(scale).add_(x)
        else:
            raise ValueError(f"unknown noise {noise!r}; valid: 'gaussian', 'uniform' or a callable")
        return out.clamp(0, 1) if clip else out

    return sample


# --- Infidelity perturbation laws (Yeh et al. 2019): (x_rows, stream, rows) -> I ----------------

INFIDELITY_SCALES = {"noisy_baseline": 0.2, "gaussian": 0.03, "square": None}


def infidelity_perturbation(kind: str, x_shape: Sequence[int], n_samples: int | None,
                            scale: float | None = None, max_side: int = 10
                            ) -> tuple[Callable[..., tuple[Tensor | None, Tensor]], int]:
    """The law of ``I`` and the number of samples per example.

    The law is called as ``law(x, e, stream, rows)`` with the whole batch ``x`` and the example
    ``e`` of every row of the chunk, and returns ``(I, x[e] - I)``; ``I`` is ``None`` when it is
    not needed to get ``I^T phi`` accurately (the noisy baseline: ``I^T phi = x^T phi - b^T phi``
    with no cancellation, since ``I`` is about ``x``), which saves gathering ``x`` per row.

    * ``"noisy_baseline"`` (Yeh et al., Sec. 3; their code's ``"Gaussian"``):
      ``x - I = clip(-scale * z, 0, 1)``, ``z ~ N(0, I)``, scale 0.2 -- a noisy black image.
    * ``"gaussian"``: ``I = scale * z`` (unclipped), scale 0.03.
    * ``"square"`` (Yeh et al.'s "Square"): ``x - I`` is ``x`` with one square of side
      ``1..max_side`` set to 0 in every channel, so ``I = x * 1_square``. ``n_samples=None`` takes
      every square (in a fixed order); an integer draws that many squares uniformly at random.
    """
    if kind not in INFIDELITY_SCALES:
        raise ValueError(f"unknown perturbation {kind!r}; valid: {sorted(INFIDELITY_SCALES)} or a callable")
    scale = INFIDELITY_SCALES[kind] if scale is None else scale
    if kind == "square":
        table = square_table(x_shape[-2], x_shape[-1], max_side)
        total = table.shape[0]
        n = total if n_samples is None else int(n_samples)

        def square(x: Tensor, e: Tensor, stream: FlatStream, rows: slice) -> tuple[Tensor, Tensor]:
            x = x[e]
            j = torch.arange(rows.start, rows.stop, device=x.device) % n
            if n_samples is not None:  # random squares, keyed like any other noise
                u = stream.uniform(rows, (), x.device, torch.float64)
                j = (u * total).long().clamp_max(total - 1)
            removed = square_masks(table.to(x.device)[j], x.shape[-2], x.shape[-1]).unsqueeze(1)
            return torch.where(removed, x, 0), torch.where(removed, 0, x)

        return square, n
    n = 100 if n_samples is None else int(n_samples)

    def noisy(x: Tensor, e: Tensor, stream: FlatStream, rows: slice) -> tuple[Tensor | None, Tensor]:
        z = stream.normal(rows, x.shape[1:], x.device, x.dtype)
        if kind == "noisy_baseline":
            return None, z.mul_(-scale).clamp_(0, 1)  # in place: the chunk's largest tensors
        pert = z.mul_(scale)
        return pert, x[e].sub_(pert)

    return noisy, n


# --- Feature groups for removal-based faithfulness ---------------------------------------------

def resolve_groups(groups: int | Tensor | str | None, x: Tensor) -> Tensor:
    """Group labels of shape (B, H, W), consecutive integers from 0, shared by all channels.

    ``int``: about that many square grid patches, of side ``round(sqrt(HW / groups))`` (100 groups
    on 32x32 give 3x3 patches: 121 groups, the last row/column narrower, the "about 100 pixel
    groups" of Tan & Tian); ``"pixels"``: one group per pixel; a tensor (H, W) or (B, H, W) of
    labels (e.g. superpixels from ``rxlit.explain.features``).
    """
    B, H, W = x.shape[0], x.shape[-2], x.shape[-1]
    if groups is None or groups == "pixels":
        labels = grid_mask(H, W, side=1)
    elif isinstance(groups, int):
        labels = grid_mask(H, W, side=max(1, round(math.sqrt(H * W / groups))))
    else:
        labels = torch.as_tensor(groups)
    labels = labels.to(x.device).long()
    if labels.dim() == 2:
        labels = labels.expand(B, H, W)
    if labels.shape != (B, H, W):
        raise ValueError(f"group labels of shape {tuple(labels.shape)} do not match inputs {tuple(x.shape)}")
    # Relabel to 0..G-1 so one-hot masks have no empty columns (superpixel ids may have gaps).
    _, dense = torch.unique(labels, return_inverse=True)
    return dense

