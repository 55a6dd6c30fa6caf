"""Split views returning ``(x, y)`` with ``x`` float32 in [0, 1], shape (C, H, W), ``y`` int64.

A split is a list of positions into a source (an in-memory tensor or a list of image files).
It exposes ``targets`` (the labels in split order, for stratification without reading images),
``take(n)`` (its first ``n`` examples) and ``with_transform(t)`` (the same examples with another
transform, used to add training augmentation to a split that is also evaluated).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset


class _Split(Dataset):
    """Common part of the split views: positions, labels and transform."""

    def __init__(self, labels: Tensor, indices: Tensor | Sequence[int] | None, transform: Callable | None):
        self._labels = torch.as_tensor(labels, dtype=torch.int64)
        if indices is None:
            indices = torch.arange(len(self._labels))
        self.indices = torch.as_tensor(indices, dtype=torch.int64)
        self.transform = transform

    @property
    def targets(self) -> Tensor:
        """Labels of the split, in split order."""
        return self._labels[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def take(self, n: int | None):
        """The first ``n`` examples (all when ``n`` is None); positions stay the same."""
        if n is None or n >= len(self):
            return self
        view = copy.copy(self)
        view.indices = self.indices[:n]
        return view

    def with_transform(self, transform: Callable | None):
        """The same examples read through another transform."""
        view = copy.copy(self)
        view.transform = transform
        return view


class TensorSplit(_Split):
    """Examples of an in-memory image tensor (N, C, H, W).

    ``uint8`` images are returned divided by 255 (exactly what ``ToTensor`` does); floating-point
    images must already lie in [0, 1] and are returned as float32. ``transform`` acts on the
    float tensor.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        indices: Tensor | Sequence[int] | None = None,
        transform: Callable[[Tensor], Tensor] | None = None,
    ):
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(
                f"expected images (N, C, H, W) and N labels, got {tuple(images.shape)} and {len(labels)}"
            )
        super().__init__(labels, indices, transform)
        self.images = images

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        j = int(self.indices[i])
        x = self.images[j]
        x = x.to(torch.float32).div(255) if x.dtype == torch.uint8 else x.to(torch.float32)
        if self.transform is not None:
            x = self.transform(x)
        return x, self._labels[j]


class FolderSplit(_Split):
    """Examples of a list of ``(path, class_index)`` image files, read with PIL.

    ``transform`` receives a PIL image converted to ``mode`` ("L" or "RGB") and must return a
    float tensor in [0, 1] (end it with ``ToTensor``).
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        mode: str,
        transform: Callable,
        indices: Tensor | Sequence[int] | None = None,
    ):
        super().__init__(torch.tensor([label for _, label in samples], dtype=torch.int64), indices, transform)
        self.paths = [path for path, _ in samples]
        self.mode = mode

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        j = int(self.indices[i])
        with Image.open(self.paths[j]) as img:
            x = self.transform(img.convert(self.mode))
        return x, self._labels[j]


class RandomCropFlip:
    """Random crop after zero padding by ``padding`` pixels, then an optional horizontal flip.

    The CIFAR recipe (padding 4 + flip) on a (C, H, W) tensor, without a PIL round trip. Draws
    from torch's global generator, which the DataLoader seeds per worker from the loader's seed.
    """

    def __init__(self, padding: int, flip: bool):
        self.padding = int(padding)
        self.flip = bool(flip)

    def __call__(self, x: Tensor) -> Tensor:
        if self.padding > 0:
            p = self.padding
            h, w = x.shape[-2:]
            padded = F.pad(x, (p, p, p, p))
            top, left = torch.randint(0, 2 * p + 1, (2,)).tolist()
            x = padded[..., top : top + h, left : left + w]
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x.contiguous()

    def __repr__(self) -> str:
        return f"RandomCropFlip(padding={self.padding}, flip={self.flip})"
