"""Any timm architecture by name: ``model=timm model.arch=convnext_nano``."""

from __future__ import annotations

import timm
from torch import nn

from rxlit.models.backbones.any_arch import dry_run, unknown_arch
from rxlit.models.registry import register_backbone


def _check_arch(arch: str) -> None:
    if not timm.is_model(arch):
        listing = f"List candidates with: python -c \"import timm; print(timm.list_models('*{arch.split('_')[0]}*'))\""
        raise unknown_arch("timm", arch, timm.list_models(), listing)


def _create(arch: str, num_classes: int, in_chans: int, image_size: tuple[int, int], options: dict) -> nn.Module:
    """timm.create_model, passing ``img_size`` only to models that accept it."""
    common = dict(pretrained=False, num_classes=num_classes, in_chans=in_chans, **options)
    try:
        return timm.create_model(arch, img_size=tuple(image_size), **common)
    except TypeError as err:
        if "img_size" not in str(err):
            raise
    return timm.create_model(arch, **common)


@register_backbone("timm", min_image_size=1)
def timm_model(
    *,
    num_classes: int,
    in_chans: int,
    image_size: tuple[int, int],
    arch: str = "resnet10t",
    timm_kwargs: dict | None = None,
    check_forward: bool = True,
) -> nn.Module:
    """``timm.create_model(arch, pretrained=False, ...)`` for any timm architecture name.

    ``img_size`` is passed only if the model takes it (ViTs do, CNNs do not). ``timm_kwargs``
    go straight to ``create_model`` (e.g. ``{drop_rate: 0.1}``). timm declares no minimum input
    size, so ``check_forward`` runs one blank image through the new model and turns a too-small
    input into a clear error.
    """
    _check_arch(arch)
    try:
        model = _create(arch, num_classes, in_chans, image_size, dict(timm_kwargs or {}))
    except (RuntimeError, AssertionError) as err:
        raise ValueError(f"timm could not build {arch!r} for {image_size} inputs: {err}") from err
    if check_forward:
        dry_run(model, "timm", arch, in_chans, image_size)
    return model
