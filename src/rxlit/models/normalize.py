"""Input normalisation as the first layer of every model.

rxlit keeps images in [0, 1] pixel space everywhere (see docs/theory.md, conventions): attacks,
perturbations and explanations all speak pixel units, and the per-data-set mean/std
normalisation happens inside the model, as its first layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _as_list(values) -> list[float]:
    # Hydra hands over ListConfig, plain code hands over tuples, tensors or a single float.
    if isinstance(values, Tensor):
        return values.detach().reshape(-1).tolist()
    if isinstance(values, (int, float)):
        return [float(values)]
    return [float(v) for v in values]


def _channel_stats(values, in_chans: int, fill: float) -> Tensor:
    """A 1-D float tensor of length ``in_chans``; a single value is broadcast to every channel."""
    stats = [float(fill)] if values is None else _as_list(values)
    if len(stats) == 1:
        stats = stats * in_chans
    if len(stats) != in_chans:
        raise ValueError(f"got {len(stats)} per-channel values for {in_chans} input channels")
    return torch.tensor(stats, dtype=torch.float32)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel (dimension 1), for any channel count.

    ``mean`` and ``std`` are buffers, so they move with ``.to(device)`` and are saved in
    checkpoints. ``None`` means the identity (mean 0, std 1).
    """

    def __init__(self, mean=None, std=None, in_chans: int | None = None):
        super().__init__()
        if in_chans is None:
            in_chans = max(len(_as_list(v)) for v in (mean, std, 0.0) if v is not None)
        mean_t = _channel_stats(mean, in_chans, 0.0)
        std_t = _channel_stats(std, in_chans, 1.0)
        if not bool((std_t > 0).all()):
            raise ValueError(f"std must be positive, got {std_t.tolist()}")
        self.in_chans = in_chans
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected input of shape (B, {self.in_chans}, ...), got {tuple(x.shape)}")
        # View the stats as (1, C, 1, ..., 1) so images, volumes and flat vectors all work.
        shape = (1, self.in_chans) + (1,) * (x.dim() - 2)
        return (x - self.mean.view(shape)) / self.std.view(shape)

    def extra_repr(self) -> str:
        return f"mean={self.mean.tolist()}, std={self.std.tolist()}"


class NormalizedModel(nn.Module):
    """``backbone(normalize(x))`` for images ``x`` in [0, 1] pixel space.

    Attributes: ``normalize``, ``backbone``, ``num_classes``, ``in_chans``, ``image_size``
    (an ``(H, W)`` pair) and ``name`` (the registered backbone name).
    """

    def __init__(
        self,
        normalize: Normalize,
        backbone: nn.Module,
        num_classes: int,
        in_chans: int,
        image_size: tuple[int, int],
        name: str = "",
    ):
        super().__init__()
        self.normalize = normalize
        self.backbone = backbone
        self.num_classes = int(num_classes)
        self.in_chans = int(in_chans)
        self.image_size = tuple(image_size)
        self.name = name

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(self.normalize(x))

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, num_classes={self.num_classes}, in_chans={self.in_chans}, "
            f"image_size={self.image_size}"
        )
