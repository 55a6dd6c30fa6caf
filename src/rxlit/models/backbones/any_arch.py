"""What the backbones that build any architecture of a library by name (``timm_any``,
``torchvision_any``) share: the error for an unknown name and the check of a too-small input."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import torch
from torch import nn


def unknown_arch(library: str, arch: str, names: Iterable[str], listing: str) -> ValueError:
    """The error for an architecture name ``library`` lacks: up to five close names, then ``listing``
    (how to list them all)."""
    close = difflib.get_close_matches(arch, list(names), n=5, cutoff=0.6)
    hint = f" Close names: {', '.join(close)}." if close else ""
    return ValueError(f"unknown {library} architecture {arch!r}.{hint} {listing}")


def dry_run(model: nn.Module, library: str, arch: str, in_chans: int, image_size: tuple[int, int]) -> None:
    """Run one blank image through the model so a too-small input fails here, with the fix."""
    was_training = model.training
    model.eval()  # BatchNorm in train mode refuses a batch of one 1x1 map
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_chans, *image_size))
    except (RuntimeError, AssertionError, ValueError) as err:
        raise ValueError(
            f"{library} model {arch!r} cannot run on {image_size[0]}x{image_size[1]} inputs "
            f"({str(err).splitlines()[0][:200]}). Use a larger data.image_size or another architecture."
        ) from err
    finally:
        model.train(was_training)
