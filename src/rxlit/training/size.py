"""Refuse a backbone whose parameter count explodes with the input size, before anything is created.

A classifier that flattens its feature map (the Madry CNN) grows with the image: ``small_cnn`` on
224x224 images once built a 205M-parameter linear layer, wrote 1.6 GB checkpoints and took minutes
per evaluation without a word. ``check_model_size`` compares the network at the data's input size
with the same backbone at a small reference size and stops the run when the input size alone
multiplies the parameter count.
"""

from __future__ import annotations

from torch import nn

LARGE = 20_000_000   # parameters; below this nothing is checked (no second build)
GROWTH = 4.0         # refuse when the input size multiplies the parameter count by more than this
REFERENCE_SIDE = 32


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_model_size(cfg: dict, module, datamodule) -> None:
    from rxlit.training.module import build_network

    count = n_parameters(module.model)
    side = int(datamodule.image_size)
    if count <= LARGE or side <= REFERENCE_SIDE:
        return
    info = dict(module.hparams.data_info, image_size=REFERENCE_SIDE)
    try:
        reference = n_parameters(build_network(cfg["model"], info, cfg["reg"]))
    except (ValueError, RuntimeError):  # a backbone that needs large inputs: nothing to compare with
        return
    if count > GROWTH * reference:
        name = cfg["model"]["name"]
        raise ValueError(
            f"model={name} has {count / 1e6:.1f}M parameters at {side}x{side} inputs but {reference / 1e6:.1f}M at "
            f"{REFERENCE_SIDE}x{REFERENCE_SIDE}: its classifier grows with the input size (checkpoints of "
            f"{4 * count / 2**30:.1f} GiB). Fix: set data.image_size to the images' own size (e.g. "
            f"data.image_size={REFERENCE_SIDE}), or use a backbone with global pooling (resnet18, vgg16, vit_tiny)")
