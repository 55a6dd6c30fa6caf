"""timm vision transformers (ViT-Tiny, Swin-Tiny) adapted to small inputs.

The patch size (and Swin's window size) follow the image size so a 32x32 CIFAR image or an
8x8 digit still becomes a grid of several tokens. Both use GELU, so guided backprop refuses them.
"""

from __future__ import annotations

import math

import timm
from torch import nn

from rxlit.models.registry import register_backbone


def _largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, max(1, limit) + 1) if n % d == 0)


def auto_patch_size(image_size: tuple[int, int], grid: int, min_grid: int, max_patch: int, min_patch: int) -> int:
    """Patch side giving about ``grid`` tokens per side, never fewer than ``min_grid``.

    The patch divides both image sides (no cropped pixels). ViT: 32 -> 4, 8 -> 2, 224 -> 16.
    """
    side = min(image_size)
    common = math.gcd(*image_size)
    patch = min(max_patch, max(min_patch, side // grid))
    while patch > 1 and side // patch < min_grid:
        patch -= 1
    return _largest_divisor_at_most(common, patch)


def _create(timm_name: str, image_size: tuple[int, int], fused_attn: bool, **options) -> nn.Module:
    """Untrained timm ``timm_name`` at ``img_size=image_size``, with ``options`` for create_model."""
    model = timm.create_model(timm_name, pretrained=False, img_size=tuple(image_size), **options)
    if not fused_attn:
        # Fused attention kernels (flash, memory-efficient, CPU flash) have no double backward, which
        # gradient-norm regularisation needs; timm's plain softmax(QK^T)V path has one.
        for module in model.modules():
            if hasattr(module, "fused_attn"):
                module.fused_attn = False
    return model


def _vit_min_size(patch_size: int | None = None, **_) -> int:
    return 4 * (patch_size or 1)


@register_backbone("vit_tiny", min_image_size=_vit_min_size)
def vit_tiny(
    *,
    num_classes: int,
    in_chans: int,
    image_size: tuple[int, int],
    patch_size: int | None = None,
    fused_attn: bool = False,
    drop_path_rate: float = 0.0,
) -> nn.Module:
    """timm ``vit_tiny_patch16_224`` at ``img_size=image_size`` (depth 12, width 192, 3 heads).

    ``patch_size=None`` picks image_side // 8 clipped to [2, 16], reduced until the grid has
    at least 4x4 tokens: 4 for 32x32 (8x8 grid), 2 for 8x8 (4x4 grid), 16 for 224x224.
    ``fused_attn=False`` keeps double backprop possible: torch's fused attention kernels (CPU
    and GPU) have no double backward, which gradient-norm regularisation needs.
    """
    patch = patch_size or auto_patch_size(image_size, grid=8, min_grid=4, max_patch=16, min_patch=2)
    return _create(
        "vit_tiny_patch16_224", image_size, fused_attn,
        num_classes=num_classes, in_chans=in_chans, patch_size=patch, drop_path_rate=drop_path_rate,
    )  # fmt: skip


def _swin_min_size(patch_size: int | None = None, **_) -> int:
    # Three patch-merging steps: the token grid must be at least 8 per side.
    return 8 * (patch_size or 1)


@register_backbone("swin_tiny", min_image_size=_swin_min_size)
def swin_tiny(
    *,
    num_classes: int,
    in_chans: int,
    image_size: tuple[int, int],
    patch_size: int | None = None,
    window_size: int | None = None,
    fused_attn: bool = False,
    drop_path_rate: float = 0.1,
) -> nn.Module:
    """timm ``swin_tiny_patch4_window7_224`` (depths 2-2-6-2, width 96) at ``img_size=image_size``.

    ``patch_size=None`` picks image_side // 8 clipped to [1, 4] so the first-stage grid is 8 or
    more per side (32x32 -> 4, 8x8 -> 1, 224 -> 4); ``window_size=None`` is 7 when the first grid
    is a multiple of 7 (224 -> 56), otherwise the largest divisor of the grid <= min(7, grid / 2),
    so the first stage has at least 2x2 windows to shift between (grid 8 -> window 4).
    timm clamps the window to each stage's grid, so late stages attend globally.
    ``drop_path_rate`` (stochastic depth, timm's default 0.1) makes train-mode outputs random.
    """
    patch = patch_size or auto_patch_size(image_size, grid=8, min_grid=8, max_patch=4, min_patch=1)
    grid = math.gcd(*image_size) // patch
    window = window_size or (7 if grid % 7 == 0 else _largest_divisor_at_most(grid, min(7, grid // 2)))
    return _create(
        "swin_tiny_patch4_window7_224", image_size, fused_attn,
        num_classes=num_classes, in_chans=in_chans, patch_size=patch, window_size=window,
        drop_path_rate=drop_path_rate,
    )  # fmt: skip
