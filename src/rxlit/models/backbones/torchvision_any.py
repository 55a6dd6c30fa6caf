"""Any torchvision classification architecture by name: ``model=torchvision model.arch=resnet50``."""

from __future__ import annotations

import difflib

import torch
import torchvision
from torch import nn

from rxlit.models.registry import register_backbone


def _check_arch(arch: str) -> None:
    names = torchvision.models.list_models(module=torchvision.models)
    if arch in names:
        return
    close = difflib.get_close_matches(arch, names, n=5, cutoff=0.6)
    hint = f" Close names: {', '.join(close)}." if close else ""
    raise ValueError(f"unknown torchvision classification architecture {arch!r}.{hint} "
                     "List them with: python -c \"import torchvision; print(torchvision.models.list_models("
                     "module=torchvision.models))\"")


def _dry_run(model: nn.Module, arch: str, in_chans: int, image_size: tuple[int, int]) -> None:
    """One blank image through the model, so a too-small input fails here with the fix."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_chans, *image_size))
    except (RuntimeError, AssertionError, ValueError) as err:
        raise ValueError(f"torchvision model {arch!r} cannot run on {image_size[0]}x{image_size[1]} inputs "
                         f"({str(err).splitlines()[0][:200]}). Use a larger data.image_size or another "
                         "architecture.") from err
    finally:
        model.train(was_training)


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
    for small images. torchvision models take 3 channels. ``tv_kwargs`` go to ``get_model``
    (e.g. ``{dropout: 0.0}``). Some torchvision models call one activation module several times
    per forward (ResNet blocks): gradient methods are exact, hook-based ones (guided backprop)
    are not meant for them.
    """
    _check_arch(arch)
    if in_chans != 3:
        raise ValueError(f"torchvision models take 3 input channels; the data have {in_chans}. Use a 3-channel "
                         "data set, or model=timm (timm models take in_chans)")
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **dict(tv_kwargs or {}))
    if check_forward:
        _dry_run(model, arch, in_chans, image_size)
    return model
