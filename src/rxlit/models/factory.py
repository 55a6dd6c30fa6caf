"""``build_model``: a registered backbone behind the data set's normalisation layer.

Usage from a Hydra config (``configs/model/<name>.yaml`` holds ``name`` and the backbone's
options; the data module supplies the rest)::

    model = build_model(**cfg.model, num_classes=dm.num_classes, in_chans=dm.in_chans,
                        image_size=dm.image_size, mean=dm.mean, std=dm.std)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

import rxlit.models.backbones  # noqa: F401 (registers the built-in backbones)
from rxlit.activations import disable_inplace
from rxlit.models.normalize import Normalize, NormalizedModel
from rxlit.models.registry import BACKBONES, min_image_size
from rxlit.models.weights import (
    ForeignWeights,
    Mismatch,
    fit_to,
    load_state,
    read_weights,
    replace_head,
    suggest_architectures,
)

__all__ = ["BACKBONES", "Normalization", "backbone_options", "build_model", "build_with_weights",
           "load_backbone_weights", "resolve_normalization"]

# Arguments every backbone receives from build_model rather than from its config.


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
    """The config keys backbone ``name`` accepts, with their defaults (read when it was registered)."""
    return BACKBONES.options(name)


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


def load_backbone_weights(backbone: nn.Module, checkpoint_path: str | Path, strict: bool = True,
                          arch: str = "") -> Mismatch:
    """Load a local weights file into ``backbone`` (``weights_only=True``; see :mod:`rxlit.models.weights`).

    Accepts a plain backbone state dict, a ``NormalizedModel`` one (``backbone.`` keys), a Lightning
    checkpoint (``state_dict`` with e.g. a ``model.backbone.`` prefix), DataParallel ``module.``
    prefixes and the robustness library's layout. A mismatch raises a ``WeightsError`` naming the
    keys and layers (``strict``), or loads what fits and returns the rest.
    """
    weights = fit_to(read_weights(checkpoint_path), backbone)
    return load_state(backbone, weights, arch or type(backbone).__name__, strict, suggest=None)


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
    strict: bool = True,
    **options,
) -> NormalizedModel:
    """Build backbone ``name`` for [0, 1] images, with ``Normalize(mean, std)`` as first layer.

    ``image_size`` is an int or an ``(H, W)`` pair; ``mean``/``std`` have one value per channel
    (or one for all; ``None`` is the identity). ``options`` are the backbone's config keys.
    Everything is checked before anything is built: unknown name, unknown option, an image too
    small for the backbone, ``pretrained=True`` (not supported: use ``checkpoint_path``).
    ``checkpoint_path`` loads a local weights file into the backbone (``strict=False`` loads
    the keys that fit). Every ``inplace`` flag in the result is off, so hooks and double backprop
    are safe.
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
        load_backbone_weights(backbone, checkpoint_path, strict=strict, arch=name)
    normalize = Normalize(mean, std, in_chans=int(in_chans))
    return NormalizedModel(normalize, backbone, num_classes, in_chans, size, name=name)


@dataclass
class Normalization:
    """The mean/std a model normalises with, and where they came from."""

    mean: list[float] | None
    std: list[float] | None
    source: str

    def as_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "source": self.source}


def resolve_normalization(weights: ForeignWeights | None, *, mean=None, std=None, normalize: bool = True,
                          data_mean=None, data_std=None, data_name: str = "") -> Normalization:
    """The model's input normalisation: ``normalize=False`` none (the model normalises inside);
    else the checkpoint's own mean/std where it holds them; else ``mean``/``std`` given by the
    user; else none for RobustBench files (RobustBench models take [0, 1] inputs); else the data
    set's statistics."""
    if not normalize:
        return Normalization(None, None, "none (model.normalize=false: the model normalises inside)")
    if weights is not None and weights.mean is not None:
        std_ = weights.std if weights.std is not None else [1.0]
        return Normalization(list(weights.mean), list(std_), f"the checkpoint ({weights.format} format)")
    if mean is not None or std is not None:
        return Normalization(_listed(mean), _listed(std), "model.mean/model.std")
    if weights is not None and weights.format == "robustbench":
        return Normalization(None, None, "none (RobustBench models take [0, 1] inputs; set model.mean/model.std "
                                         "if yours normalises with fixed constants)")
    return Normalization(_listed(data_mean), _listed(data_std), f"data set {data_name}" if data_name else "the data set")


def _listed(values) -> list[float] | None:
    if values is None:
        return None
    if isinstance(values, int | float):
        return [float(values)]
    return [float(v) for v in values]


# Architectures tried when a file does not fit, to name one that does (built on the meta device).
SUGGESTED_OPTIONS = {"torchvision": [{"arch": "resnet18"}, {"arch": "resnet50"}], "timm": []}


def _candidates() -> list[tuple[str, dict]]:
    out = []
    for name in BACKBONES.names():
        out += [(name, o) for o in SUGGESTED_OPTIONS[name]] if name in SUGGESTED_OPTIONS else [(name, {})]
    return out


def _bare_backbone(name: str, options: dict, num_classes: int, in_chans: int, size: tuple[int, int]) -> nn.Module:
    if name in ("timm", "torchvision"):
        options = {**options, "check_forward": False}
    return BACKBONES.get(name)(num_classes=num_classes, in_chans=in_chans, image_size=size, **options)


def _label(name: str, options: dict) -> str:
    """``name`` plus the options that differ from the backbone's defaults, as command-line overrides."""
    defaults = backbone_options(name)
    changed = {k: v for k, v in options.items() if k not in defaults or defaults[k] != v}
    return name + "".join(f" model.{k}={v}" for k, v in changed.items())


def build_with_weights(name: str, weights: ForeignWeights, num_classes: int, in_chans: int, image_size, *,
                       mean=None, std=None, normalize: bool = True, strict: bool = True, data_mean=None,
                       data_std=None, data_name: str = "", weights_num_classes: int | None = None,
                       **options) -> tuple[NormalizedModel, dict]:
    """Backbone ``name`` with ``weights`` loaded and its normalisation resolved
    (:func:`resolve_normalization`); returns ``(model in eval mode, info)``.

    ``weights_num_classes``: the class count the file was trained with, when it differs from the
    data's: the file is loaded into a model of that size and the head is then replaced by a new
    ``num_classes`` one (untrained). A mismatch raises a ``WeightsError`` that lists the keys, names
    the layer whose shape differs and the architectures that fit (``strict=False``: loads what
    fits and reports the rest in ``info``).
    """
    norm = resolve_normalization(weights, mean=mean, std=std, normalize=normalize, data_mean=data_mean,
                                 data_std=data_std, data_name=data_name)
    build_classes = int(weights_num_classes or num_classes)
    model = build_model(name, build_classes, in_chans, image_size, norm.mean, norm.std, **options)
    fit_to(weights, model.backbone)
    size = _as_pair(image_size)

    def suggest(state):
        build = partial_build(build_classes, in_chans, size)
        return suggest_architectures(state, _label(name, options), build, _candidates())

    mismatch = load_state(model.backbone, weights, _label(name, options), strict, suggest)
    info = {"weights": weights.path, "format": weights.format, "normalization": norm.as_dict(),
            "notes": list(weights.notes), "missing": mismatch.missing, "unexpected": mismatch.unexpected,
            "skipped": [k for k, _, _ in mismatch.shapes], "head_replaced": None}
    if build_classes != num_classes:
        info["head_replaced"] = replace_head(model.backbone, num_classes)
        model.num_classes = int(num_classes)
    return model.eval(), info


def partial_build(num_classes: int, in_chans: int, size: tuple[int, int]):
    return lambda name, options: _bare_backbone(name, options, num_classes, in_chans, size)
