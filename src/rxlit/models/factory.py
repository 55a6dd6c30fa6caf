"""``build_model``: a registered backbone behind the data set's normalisation layer.

Usage from a Hydra config (``configs/model/<name>.yaml`` holds ``name`` and the backbone's
options; the data module supplies the rest)::

    model = build_model(**cfg.model, num_classes=dm.num_classes, in_chans=dm.in_chans,
                        image_size=dm.image_size, mean=dm.mean, std=dm.std)
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from torch import nn

import rxlit.models.backbones  # noqa: F401 (registers the built-in backbones)
from rxlit.models.activations import disable_inplace
from rxlit.models.normalize import Normalize, NormalizedModel
from rxlit.models.registry import BACKBONES, min_image_size

__all__ = ["BACKBONES", "build_model", "backbone_options", "load_backbone_weights"]

# Arguments every backbone receives from build_model rather than from its config.
_DATA_ARGS = ("num_classes", "in_chans", "image_size")


def _as_pair(image_size) -> tuple[int, int]:
    if isinstance(image_size, int):
        return (image_size, image_size)
    pair = tuple(int(s) for s in image_size)
    if len(pair) != 2:
        raise ValueError(f"image_size must be an int or an (H, W) pair, got {image_size!r}")
    return pair


# Model-config keys that describe the run, not the network: the training recipe (optimiser defaults,
# docs/models.md) and the label used in run names.
RUN_KEYS = ("recipe", "label")


def backbone_options(name: str) -> dict[str, object]:
    """The config keys backbone ``name`` accepts, with their defaults."""
    params = inspect.signature(BACKBONES.get(name)).parameters.values()
    return {p.name: p.default for p in params if p.name not in _DATA_ARGS}


def _get_backbone(name: str):
    try:
        return BACKBONES.get(name)
    except ValueError as err:
        raise ValueError(f"{err}. For any timm architecture use `model=timm model.arch=<timm name>`.") from None


def _check_options(name: str, options: dict) -> None:
    unknown = sorted(set(options) - set(backbone_options(name)))
    if unknown:
        valid = ", ".join(backbone_options(name)) or "(none)"
        raise ValueError(
            f"model {name!r} got unknown option(s) {', '.join(unknown)}; it accepts: {valid} "
            "(plus pretrained and checkpoint_path)"
        )


def _check_size(name: str, size: tuple[int, int], options: dict) -> None:
    minimum = min_image_size(name, **options)
    if min(size) < minimum:
        raise ValueError(
            f"image_size {size[0]}x{size[1]} is too small for model {name!r}: it needs at least "
            f"{minimum}x{minimum}. Resize the data (a larger data.image_size) or pick a backbone "
            "with a smaller minimum (see docs/models.md)."
        )


def _check_pretrained(name: str, pretrained: bool) -> None:
    if pretrained:
        raise ValueError(
            f"pretrained=True is not supported for model {name!r}: rxlit never downloads weights. "
            "Save a state dict locally and pass it as checkpoint_path=<file> (model.checkpoint_path=...)."
        )


def _common_prefix(keys, reference: list[str]) -> str | None:
    """The prefix that, stripped from ``keys``, makes the most of them backbone keys."""
    wanted = set(reference)
    best, best_hits = None, 0
    candidates = {k[: len(k) - len(r)] for k in keys for r in reference[:1] if k.endswith(r)}
    for prefix in candidates | {""}:
        hits = sum(1 for k in keys if k.startswith(prefix) and k[len(prefix) :] in wanted)
        if hits > best_hits:
            best, best_hits = prefix, hits
    return best


def load_backbone_weights(backbone: nn.Module, checkpoint_path: str | Path) -> None:
    """Load a local state dict into ``backbone`` (``weights_only=True``, strict).

    Accepts a plain backbone state dict, a ``NormalizedModel`` one (``backbone.`` keys) or a
    Lightning checkpoint (``state_dict`` with e.g. a ``model.backbone.`` prefix).
    """
    path = Path(checkpoint_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint_path {str(path)!r} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    reference = list(backbone.state_dict())
    prefix = _common_prefix(list(state), reference)
    if prefix is None:
        raise ValueError(f"no key of {str(path)!r} matches the backbone (first expected key {reference[0]!r})")
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    backbone.load_state_dict(weights, strict=True)


def build_model(
    name: str,
    num_classes: int,
    in_chans: int,
    image_size,
    mean=None,
    std=None,
    *,
    pretrained: bool = False,
    checkpoint_path: str | Path | None = None,
    **options,
) -> NormalizedModel:
    """Build backbone ``name`` for [0, 1] images, with ``Normalize(mean, std)`` as first layer.

    ``image_size`` is an int or an ``(H, W)`` pair; ``mean``/``std`` have one value per channel
    (or one for all; ``None`` is the identity). ``options`` are the backbone's config keys.
    Everything is checked before anything is built: unknown name, unknown option, an image too
    small for the backbone, ``pretrained=True`` (not supported: use ``checkpoint_path``).
    Every ``inplace`` flag in the result is off, so hooks and double backprop are safe.
    """
    factory = _get_backbone(name)
    _check_pretrained(name, pretrained)
    options = {k: v for k, v in options.items() if k not in RUN_KEYS}
    _check_options(name, options)
    size = _as_pair(image_size)
    _check_size(name, size, options)
    if num_classes < 1 or in_chans < 1:
        raise ValueError(f"num_classes and in_chans must be positive, got {num_classes} and {in_chans}")
    backbone = factory(num_classes=int(num_classes), in_chans=int(in_chans), image_size=size, **options)
    disable_inplace(backbone)
    if checkpoint_path:
        load_backbone_weights(backbone, checkpoint_path)
    normalize = Normalize(mean, std, in_chans=int(in_chans))
    return NormalizedModel(normalize, backbone, num_classes, in_chans, size, name=name)
