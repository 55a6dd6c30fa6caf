"""Feature groups ("interpretable features") for LIME, KernelSHAP and C-LIME.

A group mask labels every pixel with a group ``0..k-1``; a group's weight is broadcast back to
every pixel of the group and every channel (Captum's convention). Tan & Tian (ICML 2023) explain
with superpixels; we provide

* ``grid``: square-ish patches, ``n_features`` of them (64 by default) or of a given side;
* ``quickshift``: scikit-image superpixels (LIME's ``lime_image`` defaults kernel_size=4,
  max_dist=200, ratio=0.2), computed on the CPU image by image (preprocessing; no cache);
* ``elements``: every input element (pixel and channel) its own group (C-LIME's default);
* a tensor of labels: ``(H, W)``, ``(B, H, W)`` or the full shape of ``x``.

Masks of different images may use different numbers of groups: ``k`` is the largest, and the
groups an image lacks are *inactive* (no pixel; their weight is 0 and samplers skip them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

QUICKSHIFT_DEFAULTS = {"kernel_size": 4, "max_dist": 200, "ratio": 0.2}


@dataclass
class Groups:
    """Group labels of every input element, ``index`` (B, D) with D = x[0].numel(), ``k`` groups,
    ``active`` (B, k): which groups have at least one element in each image. ``shared`` (D,) is
    the labels when every image has the same ones (a grid, ``elements``), else None."""

    index: Tensor
    k: int
    active: Tensor
    shared: Tensor | None = None

    def broadcast(self, weights: Tensor, shape: torch.Size) -> Tensor:
        """Group weights (B, k) -> every element of the group, shape ``shape``."""
        return weights.gather(1, self.index).view(shape)

    def expand(self, coalitions: Tensor, rows: Tensor) -> Tensor:
        """Per-element values (R, D) of per-group coalitions (R, k) for examples ``rows``.

        With shared labels this is one column gather, without building an (R, D) index (a
        large share of LIME's and KernelSHAP's time besides the model, before).
        """
        if self.shared is not None:
            return coalitions.index_select(1, self.shared)
        return coalitions.gather(1, self.index.index_select(0, rows))

    def sums(self, values: Tensor) -> Tensor:
        """Per-group sums (B, k) of per-element values (B, D)."""
        out = torch.zeros(values.shape[0], self.k, dtype=values.dtype, device=values.device)
        return out.scatter_add_(1, self.index, values)


def grid_mask(height: int, width: int, n_groups: int | None = 64, side: int | None = None,
              device=None) -> Tensor:
    """Labels (H, W) of a grid of rectangular patches, row-major.

    With ``side`` the patches are ``side x side`` (the last row/column may be smaller); else
    about ``n_groups`` patches in a ``rows x cols`` grid shaped like the image (64 on a square
    image: 8 x 8).
    """
    if side is not None:
        rows, cols = math.ceil(height / side), math.ceil(width / side)
        row_of = torch.arange(height, device=device) // side
        col_of = torch.arange(width, device=device) // side
    else:
        rows = min(height, max(1, round(math.sqrt(n_groups * height / width))))
        cols = min(width, max(1, round(n_groups / rows)))
        row_of = torch.arange(height, device=device) * rows // height
        col_of = torch.arange(width, device=device) * cols // width
    return row_of.view(-1, 1) * cols + col_of.view(1, -1)


def quickshift_mask(x: Tensor, kernel_size: float = 4, max_dist: float = 200, ratio: float = 0.2,
                    **options) -> Tensor:
    """Quickshift superpixels (Vedaldi & Soatto 2008, via scikit-image) of every image: (B, H, W).

    Labels are made contiguous ``0..k_b-1`` per image. Grey images are repeated to RGB (the Lab
    conversion needs three channels). Runs on the CPU, one image at a time.
    """
    from skimage.segmentation import quickshift

    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"quickshift needs images (B, 1 or 3, H, W), got shape {tuple(x.shape)}")
    images = x.detach().to("cpu", torch.float64).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    masks = []
    for image in images:
        rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
        labels = quickshift(rgb, kernel_size=kernel_size, max_dist=max_dist, ratio=ratio, **options)
        masks.append(np.unique(labels, return_inverse=True)[1].reshape(labels.shape))
    return torch.as_tensor(np.stack(masks), dtype=torch.long, device=x.device)


def _full_shape(mask: Tensor, x: Tensor) -> Tensor:
    """A label tensor as (B, *x.shape[1:]): (H, W) and (B, H, W) masks cover every channel."""
    mask = torch.as_tensor(mask, device=x.device).long()
    if mask.dim() == x.dim() - 2:
        mask = mask.view(1, 1, *mask.shape)
    elif mask.dim() == x.dim() - 1:
        mask = mask.unsqueeze(1)
    if mask.dim() != x.dim():
        raise ValueError(f"feature mask of shape {tuple(mask.shape)} does not fit inputs {tuple(x.shape)}")
    try:
        return mask.expand_as(x)
    except RuntimeError:
        raise ValueError(f"feature mask of shape {tuple(mask.shape)} does not broadcast to {tuple(x.shape)}") from None


def from_labels(mask: Tensor, x: Tensor) -> Groups:
    """Groups from integer labels ``0..k-1`` (any layout :func:`_full_shape` accepts)."""
    index = _full_shape(mask, x).reshape(x.shape[0], -1).contiguous()
    if index.numel() and index.min() < 0:
        raise ValueError("feature labels must be non-negative")
    k = int(index.max()) + 1
    active = torch.zeros(x.shape[0], k, dtype=torch.bool, device=x.device)
    active.scatter_(1, index, True)
    shared = index[0] if bool((index == index[:1]).all()) else None
    return Groups(index, k, active, shared)


FEATURES = ("grid", "quickshift", "elements")


def feature_groups(x: Tensor, features: str | Tensor | None = "grid", n_features: int = 64,
                   feature_options: dict | None = None) -> Groups:
    """The groups of a batch: ``features`` is ``grid`` / ``quickshift`` / ``elements`` (``None``
    means ``elements``) or a label tensor; ``feature_options`` go to :func:`grid_mask`
    (``side``) or :func:`quickshift_mask`."""
    options = dict(feature_options or {})
    if isinstance(features, Tensor):
        return from_labels(features, x)
    if features is None or features == "elements":
        per_example = torch.arange(x[0].numel(), device=x.device).view(x.shape[1:])
        return from_labels(per_example.unsqueeze(0), x)
    if features == "grid":
        if x.dim() != 4:
            raise ValueError(f"grid features need images (B, C, H, W), got shape {tuple(x.shape)}; "
                             "use features='elements' or a label tensor")
        options.setdefault("n_groups", n_features)
        return from_labels(grid_mask(x.shape[2], x.shape[3], device=x.device, **options), x)
    if features == "quickshift":
        return from_labels(quickshift_mask(x, **{**QUICKSHIFT_DEFAULTS, **options}), x)
    raise ValueError(f"unknown features {features!r}; valid: {', '.join(FEATURES)} or a label tensor")


def feature_sizes(x: Tensor, options: dict) -> Tensor:
    """Every input element's feature size (shape of x) for a method whose ``features``,
    ``n_features`` and ``feature_options`` options define its features (LIME, KernelSHAP): the
    number of elements each broadcast weight is copied to."""
    groups = feature_groups(x, options.get("features", "grid"), options.get("n_features", 64),
                            options.get("feature_options"))
    counts = torch.zeros(groups.index.shape[0], groups.k, dtype=x.dtype, device=x.device)
    counts.scatter_add_(1, groups.index, torch.ones_like(groups.index, dtype=x.dtype))
    return counts.gather(1, groups.index).view(x.shape)
