"""Any torchvision classification architecture by name: ``model=torchvision model.arch=resnet50``."""

from __future__ import annotations

import torchvision
from torch import nn

from rxlit.models.backbones.any_arch import dry_run, unknown_arch
from rxlit.models.registry import register_backbone


def _check_arch(arch: str) -> None:
    names = torchvision.models.list_models(module=torchvision.models)
    if arch not in names:
        listing = ("List them with: python -c \"import torchvision; print(torchvision.models.list_models("
                   "module=torchvision.models))\"")
        raise unknown_arch("torchvision classification", arch, names, listing)


def _set_in_chans(model: nn.Module, in_chans: int) -> None:
    """Rebuild the first Conv2d for ``in_chans`` input channels (same kernel, stride, padding)."""
    name, conv = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), (None, None))
    if conv is None:
        raise ValueError(f"this torchvision model has no Conv2d to adapt to {in_chans} input channels; use 3-channel data")
    new = nn.Conv2d(in_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    conv.groups if conv.groups == 1 else in_chans, conv.bias is not None)
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


@register_backbone("torchvision", min_image_size=1)
def torchvision_model(
    *,
    num_classes: int,
    in_chans: int,
    image_size: tuple[int, int],
    arch: str = "resnet18",
    tv_kwargs: dict | None = None,
    check_forward: bool = True,
) -> nn.Module:
    """``torchvision.models.get_model(arch, weights=None, num_classes=...)``, unchanged.

    The ImageNet layout (e.g. ResNet's 7x7 stride-2 stem and max-pool) is kept, so torchvision's
    own state dicts load; rxlit's ``resnet18``/``resnet50`` are the same networks with a CIFAR stem
    for small images. For ``in_chans`` other than 3 the first convolution is rebuilt with that many
    input channels (so 3-channel weights no longer fit it). ``tv_kwargs`` go to ``get_model``
    (e.g. ``{dropout: 0.0}``). Some torchvision models call one activation module several times
    per forward (ResNet blocks): gradient methods are exact, hook-based ones (guided backprop)
    are not meant for them.
    """
    _check_arch(arch)
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **dict(tv_kwargs or {}))
    if in_chans != 3:
        _set_in_chans(model, in_chans)
    if check_forward:
        dry_run(model, "torchvision", arch, in_chans, image_size)
    return model
