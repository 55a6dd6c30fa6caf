"""Occlusion (Zeiler & Fergus, ECCV 2014), as Captum's ``Occlusion``.

A ``patch x patch`` window (all channels) slides with ``stride``; each window is set to the
baseline and the drop ``f(x) - f(x_occluded)`` is credited to every pixel it covers; a pixel's
attribution is the average drop over the windows covering it. Window starts along a side of
length ``L`` are ``0, s, 2s, ..., ceil((L - p) / s) * s`` (Captum's placement: the last window
may stick out of the image and is cropped).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rxlit.explain.gradients import as_baseline
from rxlit.explain.passes import forward_scalar, score_rows
from rxlit.explain.registry import register_method


def window_starts(length: int, patch: int, stride: int) -> list[int]:
    if patch > length:
        raise ValueError(f"occlusion patch {patch} is larger than the image side {length}")
    if stride > patch and patch < length:
        raise ValueError("occlusion stride must not exceed the patch (pixels would be skipped)")
    return [i * stride for i in range(math.ceil((length - patch) / stride) + 1)]


def occlusion_windows(height: int, width: int, patch: int, stride: int, device=None) -> Tensor:
    """Boolean masks (W, H*W) of all window positions, row-major."""
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    row_in = torch.stack([(rows >= s) & (rows < s + patch) for s in window_starts(height, patch, stride)])
    col_in = torch.stack([(cols >= s) & (cols < s + patch) for s in window_starts(width, patch, stride)])
    return (row_in[:, None, :, None] & col_in[None, :, None, :]).flatten(0, 1).flatten(1)


def window_sizes(x: Tensor, options: dict) -> Tensor:
    """A pixel's value is the drop of a whole window (all channels): each is copied to
    ``patch^2 * C`` elements (cropped border windows are smaller; the attribution is approximate)."""
    return torch.full_like(x, float(options.get("patch", 4) ** 2 * x.shape[1]))


@register_method("occlusion", units="attribution", broadcast=window_sizes)
def occlusion(model: nn.Module, x: Tensor, target: Tensor, *, patch: int = 4, stride: int = 2,
              baseline: float | Tensor = 0.0, output: str = "logit", chunk_size: int | None = None) -> Tensor:
    """Occlusion with ``patch x patch`` windows moved by ``stride`` and set to ``baseline`` (0)."""
    if x.dim() != 4:
        raise ValueError(f"occlusion needs images (B, C, H, W), got shape {tuple(x.shape)}")
    batch, _, height, width = x.shape
    windows = occlusion_windows(height, width, patch, stride, device=x.device)
    n = windows.shape[0]
    base = as_baseline(baseline, x)
    hidden = windows.to(x.dtype).view(n, 1, height, width)

    def build(rows: Tensor) -> Tensor:
        example, window = rows // n, rows % n
        return x[example] + (base[example] - x[example]) * hidden[window]

    with torch.no_grad():
        clean = forward_scalar(model, x, target, output)
    drops = clean.unsqueeze(1) - score_rows(model, build, target, n, output, chunk_size, like=x)
    cover = windows.to(x.dtype)
    attribution = (drops @ cover) / cover.sum(dim=0).clamp_min(1)
    return attribution.view(batch, 1, height, width).expand_as(x).contiguous()
