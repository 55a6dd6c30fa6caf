"""Generated images whose label is decided by a known pixel region (ground truth for explanations)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .base import RxDataModule, check_positive_int, register_dataset
from .datasets import TensorSplit
from .digits import DIGITS_ATTACK
from .splits import SYNTHETIC_STREAM, derive_seed

SPLIT_KEYS = {"train": 0, "val": 1, "test": 2}


def patch_masks(num_classes: int, image_size: int) -> Tensor:
    """(K, 1, H, W) masks: class k owns cell k of a ceil(sqrt(K)) x ceil(sqrt(K)) grid, row-major."""
    grid = math.ceil(math.sqrt(num_classes))
    cell = image_size // grid
    masks = torch.zeros(num_classes, 1, image_size, image_size)
    for k in range(num_classes):
        row, col = divmod(k, grid)
        masks[k, 0, row * cell : (row + 1) * cell, col * cell : (col + 1) * cell] = 1.0
    return masks


@register_dataset("synthetic")
class SyntheticDataModule(RxDataModule):
    """Noise images with one bright class patch: a data set with a known explanation.

    Every pixel of every channel is background noise ``U[0, noise)``; the pixels of the patch
    owned by class ``y`` get ``+signal`` on top. Requiring ``noise + signal <= 1`` keeps images in
    [0, 1] without clipping, and ``signal >= noise`` (the default 0.5/0.5) makes every patch pixel
    brighter than every background pixel. Labels are balanced; images are a pure function of
    ``seed`` and the split. :meth:`ground_truth_mask` gives the pixels that decide the label.

    ``augment`` is refused: a crop or flip would move the region that decides the label.
    ``mean``/``std`` are the exact per-pixel moments of this distribution.
    """

    default_augment = False
    default_attack = DIGITS_ATTACK
    fixed_options = ("val_fraction",)  # the splits are generated (n_train, n_val, n_test), not carved

    def __init__(
        self,
        *,
        image_size: int = 8,
        in_chans: int = 1,
        num_classes: int = 4,
        n_train: int = 1024,
        n_val: int = 256,
        n_test: int = 256,
        noise: float = 0.5,
        signal: float = 0.5,
        **common: Any,
    ):
        super().__init__(val_fraction=None, **common)
        if self.augment:
            raise ValueError("data.augment must be false for synthetic: augmentation moves the class patch")
        for key, value in (("image_size", image_size), ("in_chans", in_chans), ("n_train", n_train),
                           ("n_val", n_val), ("n_test", n_test)):  # fmt: skip
            check_positive_int(key, value)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"data.num_classes must be an integer >= 2, got {num_classes!r}")
        grid = math.ceil(math.sqrt(num_classes))
        if image_size < grid:
            raise ValueError(
                f"data.image_size must be >= {grid} to give each of {num_classes} classes a patch"
            )
        if not (0.0 <= noise < 1.0 and 0.0 < signal <= 1.0 and noise + signal <= 1.0):
            raise ValueError(
                f"data.noise in [0, 1) and data.signal in (0, 1] need noise + signal <= 1, got {noise}, {signal}"
            )
        self.image_size, self.in_chans, self.num_classes = int(image_size), int(in_chans), int(num_classes)
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.noise, self.signal = float(noise), float(signal)
        self.class_names = [f"patch_{k}" for k in range(num_classes)]
        self.class_masks = patch_masks(num_classes, image_size)
        self.mean, self.std = self._moments()

    def _moments(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        # Pixel = U[0, noise) + signal * [pixel in the patch of a uniformly drawn class].
        lit = self.class_masks.mean().item()
        mean = self.noise / 2 + self.signal * lit
        std = math.sqrt(self.noise**2 / 12 + self.signal**2 * lit * (1 - lit))
        return (mean,) * self.in_chans, (std,) * self.in_chans

    def ground_truth_mask(self, y: Tensor) -> Tensor:
        """(B, 1, H, W) float masks, 1 on the pixels of the patch that decides each label in ``y``."""
        y = torch.as_tensor(y, dtype=torch.int64)
        return self.class_masks.to(y.device)[y]

    def generate(self, split: str) -> tuple[Tensor, Tensor]:
        """Images (N, C, H, W) and balanced labels of one split, from ``seed``."""
        n = self.sizes[split]
        gen = torch.Generator().manual_seed(derive_seed(self.seed, SYNTHETIC_STREAM, SPLIT_KEYS[split]))
        labels = (torch.arange(n) % self.num_classes)[torch.randperm(n, generator=gen)]
        background = (
            torch.rand(n, self.in_chans, self.image_size, self.image_size, generator=gen) * self.noise
        )
        return background + self.signal * self.class_masks[labels], labels

    def load_splits(self) -> dict[str, TensorSplit]:
        return {split: TensorSplit(*self.generate(split)) for split in SPLIT_KEYS}
