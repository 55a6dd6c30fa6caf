"""Weights from elsewhere: read a checkpoint file safely, find its state dict, load it with clear errors.

Formats (``weights_format=``):

* ``state_dict``: a plain state dict, or a dict holding one under ``state_dict``, ``model`` or
  ``model_state_dict``; ``module.`` prefixes (DataParallel / DDP) are removed.
* ``robustbench``: RobustBench model-zoo files (a state dict, or one under ``state_dict``, with
  ``module.`` and ``model.`` prefixes removed as RobustBench does); a ``mu``/``sigma`` pair of
  normalisation buffers is read as the model's mean/std. RobustBench models take [0, 1] inputs,
  so without such buffers the model gets no normalisation unless ``mean``/``std`` are given.
* ``robustness``: MadryLab ``robustness`` files: ``{"model": {"module.normalizer.new_mean", ...,
  "module.model.<classifier>", "module.attacker.model.<same classifier>"}, "epoch", ...}``. The
  classifier is taken from ``module.model.`` and the mean/std from the normaliser buffers.
* ``lightning``: a Lightning checkpoint of another project: ``state_dict`` whose keys carry the
  module's attribute name (``net.``, ``model.`` ...): name it with ``prefix``, or let the loader
  find the prefix that makes the keys fit the architecture. rxlit's own checkpoints load this way
  too, with their normalisation.
* ``auto`` (default): Lightning if the file has Lightning's top-level keys, robustness if the
  state dict has the normaliser/attacker entries, else ``state_dict``. RobustBench files look
  like plain state dicts: say ``robustbench`` to get its normalisation convention.

Every file is read with ``torch.load(weights_only=True)`` (no code from the file runs); a few
harmless non-tensor types that training scripts often save (``argparse.Namespace``, numpy
scalars) are allowed. ``.safetensors`` files are read with safetensors.
"""

from __future__ import annotations

import argparse
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

FORMATS = ("auto", "state_dict", "robustbench", "robustness", "lightning")
STATE_KEYS = ("state_dict", "model_state_dict", "model")
LIGHTNING_KEYS = ("pytorch-lightning_version", "hyper_parameters", "global_step", "optimizer_states")
SHOW = 5  # keys listed per kind of mismatch


class WeightsError(ValueError):
    """A weights file that cannot be used as asked: missing, not a checkpoint, or not fitting the model."""


class MissingWeightsError(WeightsError, FileNotFoundError):
    """The weights file does not exist."""


@dataclass
class ForeignWeights:
    """A state dict found in a file, with the normalisation it records (if any)."""

    state: dict[str, Tensor]
    path: str
    format: str
    mean: list[float] | None = None
    std: list[float] | None = None
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------ reading
def _safe_globals() -> list:
    """Non-tensor types that are harmless to rebuild and common in training checkpoints."""
    allowed: list = [argparse.Namespace, np.dtype]
    allowed += [type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32", "bool")]
    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    allowed += [scalar, (scalar, "numpy.core.multiarray.scalar")]  # numpy 1.x pickles name it so
    return allowed


def _looks_like(head: bytes) -> str:
    """A guess at what a file that is not a checkpoint holds, from its first bytes."""
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    if head.startswith(b"\xff\xd8"):
        return "a JPEG image"
    if head.startswith(b"\x93NUMPY"):
        return "a numpy .npy array"
    if not head:
        return "an empty file"
    if all(32 <= b < 127 or b in b"\r\n\t" for b in head):
        return "a text file"
    return "not a PyTorch checkpoint"


def _is_safetensors(path: Path, head: bytes) -> bool:
    if path.suffix == ".safetensors":
        return True
    if len(head) < 9:
        return False
    size = int.from_bytes(head[:8], "little")
    return 0 < size < 100_000_000 and head[8:9] == b"{"


def read_file(path: str | Path) -> object:
    """The object saved in ``path`` (``weights_only=True``), or a :class:`WeightsError` that says
    what the file is instead."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingWeightsError(f"weights file {str(path)!r} does not exist: pass weights=<a .pt/.pth/.ckpt/.safetensors file>")
    with path.open("rb") as f:
        head = f.read(16)
    if _is_safetensors(path, head):
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    is_zip, is_pickle = head.startswith(b"PK\x03\x04"), head[:1] == b"\x80"
    if not (is_zip or is_pickle):
        raise WeightsError(f"{path} is not a checkpoint: it looks like {_looks_like(head)}. weights= takes a file "
                           "written by torch.save (.pt, .pth, .ckpt, .tar) or a .safetensors file")
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if found:
            raise WeightsError(
                f"{path} stores a Python object of type {found.group(1)} besides its tensors; rxlit loads weights "
                "with weights_only=True and does not run code from files. If you trust the file, save its tensors "
                "once: python -c \"import torch; c = torch.load('IN', weights_only=False); "
                "torch.save(c.get('state_dict', c.get('model', c)), 'OUT.pt')\" and pass weights=OUT.pt") from None
        raise WeightsError(f"{path} is a pickle that is not a PyTorch checkpoint ({_first_line(err)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        raise WeightsError(f"{path} is corrupt or not a PyTorch checkpoint ({err.__class__.__name__}: "
                           f"{_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else err.__class__.__name__


# ------------------------------------------------------------------------- finding the state dict
def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, Tensor) for v in obj.values())


def _describe(obj) -> str:
    if not isinstance(obj, dict):
        return f"a {type(obj).__name__}"
    keys = ", ".join(f"{k!r} ({type(v).__name__})" for k, v in list(obj.items())[:8])
    return f"a dict with keys {keys}{' ...' if len(obj) > 8 else ''}"


def find_state_dict(obj, path: str, keys=STATE_KEYS) -> dict[str, Tensor]:
    """``obj`` itself when it is a state dict (name -> tensor), else the first of ``keys`` holding one."""
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, dict):
        for key in keys:
            if _is_state_dict(obj.get(key)):
                return dict(obj[key])
    raise WeightsError(f"no state dict (parameter name -> tensor) in {path}: it holds {_describe(obj)}; "
                       f"expected the state dict itself or one under {', '.join(map(repr, keys))}")


def strip_prefix(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Remove a leading ``prefix`` from every key that has it."""
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def strip_module(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Remove DataParallel / DDP ``module.`` prefixes (repeated ones too)."""
    while any(k.startswith("module.") for k in state):
        state = strip_prefix(state, "module.")
    return state


def select_prefix(state: dict[str, Tensor], prefix: str, path: str) -> dict[str, Tensor]:
    """The entries under ``prefix``, with it removed; an error listing the file's prefixes otherwise."""
    chosen = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not chosen:
        tops = sorted({k.split(".")[0] + "." for k in state})
        raise WeightsError(f"no key of {path} starts with weights_prefix={prefix!r}; its keys start with "
                           f"{', '.join(tops[:10])}")
    return chosen


def _stats(*tensors) -> list[float] | None:
    return None if tensors[0] is None else [float(v) for v in tensors[0].detach().reshape(-1)]


def detect_format(obj) -> str:
    """``lightning``, ``robustness`` or ``state_dict`` (see the module docstring)."""
    if isinstance(obj, dict) and "state_dict" in obj and any(k in obj for k in LIGHTNING_KEYS):
        return "lightning"
    try:
        state = find_state_dict(obj, "")
    except WeightsError:
        return "state_dict"
    keys = strip_module(dict.fromkeys(state)).keys()
    if "normalizer.new_mean" in keys or any(k.startswith("attacker.model.") for k in keys):
        return "robustness"
    return "state_dict"


def _robustness(obj, path: str) -> ForeignWeights:
    state = strip_module(find_state_dict(obj, path, ("model", "state_dict")))
    model = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    if not model:
        raise WeightsError(f"{path} has no module.model.* entries: not a robustness-library checkpoint; try "
                           "weights_format=state_dict")
    mean, std = state.get("normalizer.new_mean"), state.get("normalizer.new_std")
    notes = [f"robustness library checkpoint (epoch {obj['epoch']})" if isinstance(obj, dict) and "epoch" in obj
             else "robustness library checkpoint"]
    return ForeignWeights(model, path, "robustness", _stats(mean), _stats(std), notes)


def _robustbench(obj, path: str) -> ForeignWeights:
    state = strip_module(find_state_dict(obj, path, ("state_dict",)))
    state = strip_prefix(state, "model.")
    mean, std = state.pop("mu", None), state.pop("sigma", None)
    return ForeignWeights(state, path, "robustbench", _stats(mean), _stats(std))


def extract(obj, path: str, fmt: str = "auto", prefix: str | None = None) -> ForeignWeights:
    """The :class:`ForeignWeights` of a loaded file in format ``fmt`` (see the module docstring)."""
    if fmt not in FORMATS:
        raise WeightsError(f"unknown weights_format {fmt!r}; valid: {', '.join(FORMATS)}")
    fmt = detect_format(obj) if fmt == "auto" else fmt
    if fmt == "robustness":
        weights = _robustness(obj, path)
    elif fmt == "robustbench":
        weights = _robustbench(obj, path)
    else:
        keys = ("state_dict",) if fmt == "lightning" else STATE_KEYS
        weights = ForeignWeights(strip_module(find_state_dict(obj, path, keys)), path, fmt)
    if prefix:
        weights.state = select_prefix(weights.state, prefix, path)
    return weights


def read_weights(path: str | Path, fmt: str = "auto", prefix: str | None = None) -> ForeignWeights:
    """Read ``path`` and find its state dict and normalisation (``fmt``: one of :data:`FORMATS`)."""
    return extract(read_file(path), str(path), fmt, prefix)


# ----------------------------------------------------------------------------- fitting the model
def _fit_prefix(keys: list[str], wanted: set[str], path: str = "") -> str:
    """The leading prefix whose removal makes the most ``keys`` names of ``wanted`` ('' if none helps);
    two prefixes that fit equally well (a model and its EMA copy) are an error naming both."""
    hits = {"": sum(k in wanted for k in keys)}
    candidates = {k[: len(k) - len(w)] for k in keys for w in wanted if k.endswith("." + w)}
    for prefix in candidates:
        hits[prefix] = sum(1 for k in keys if k.startswith(prefix) and k[len(prefix):] in wanted)
    top = max(hits.values())
    best = sorted(p for p, h in hits.items() if h == top)
    if hits[""] == top or top == 0:
        return ""
    if len(best) > 1:
        raise WeightsError(f"{path}: several parts of the file fit the architecture equally well "
                           f"({', '.join(map(repr, best))}); choose one with weights_prefix=<prefix>")
    return best[0]


def fit_to(weights: ForeignWeights, backbone: nn.Module) -> ForeignWeights:
    """Drop a wrapper prefix (``backbone.``, ``model.backbone.``, ``net.`` ...) the backbone's names do
    not have; an rxlit ``normalize.mean``/``normalize.std`` beside ``backbone.`` becomes the
    normalisation."""
    wanted = set(backbone.state_dict())
    prefix = _fit_prefix(list(weights.state), wanted, weights.path)
    if not prefix:
        return weights
    state = weights.state
    parent = prefix.removesuffix("backbone.")
    if parent != prefix and f"{parent}normalize.mean" in state and weights.mean is None:
        weights.mean, weights.std = _stats(state[f"{parent}normalize.mean"]), _stats(state[f"{parent}normalize.std"])
        weights.notes.append("normalisation from the file's rxlit normalize layer")
    weights.state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    weights.notes.append(f"prefix {prefix!r} removed")
    return weights


@dataclass
class Mismatch:
    """What keeps a state dict from loading into a module."""

    missing: list[str]
    unexpected: list[str]
    shapes: list[tuple[str, tuple, tuple]]  # (name, file shape, model shape)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)


def compare(state: dict[str, Tensor], module: nn.Module) -> Mismatch:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items()
              if k in own and tuple(v.shape) != tuple(own[k].shape)]
    return Mismatch(missing, unexpected, shapes)


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:SHOW]) + (f", ... ({len(keys) - SHOW} more)" if len(keys) > SHOW else "")


def head_key(module: nn.Module) -> str | None:
    """The weight of the last Linear layer (the classifier head), or None."""
    names = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    return f"{names[-1]}.weight" if names else None


def shape_hints(mismatch: Mismatch, module: nn.Module) -> list[str]:
    """Readable causes of shape differences: stem, input channels, number of classes."""
    hints = []
    head = head_key(module)
    for name, file_shape, model_shape in mismatch.shapes:
        if len(file_shape) == 4 and len(model_shape) == 4 and file_shape[2:] != model_shape[2:]:
            k_file, k_model = file_shape[2], model_shape[2]
            if k_file == 7 and k_model == 3:
                hints.append(f"{name}: the file has a 7x7 first convolution (ImageNet stem); this model has a 3x3 CIFAR "
                             "stem (rxlit uses it for images up to 64 px). Use model=torchvision model.arch=<name> "
                             "(torchvision's ImageNet layout), or evaluate at data.image_size > 64")
            elif k_file == 3 and k_model == 7:
                hints.append(f"{name}: the file has a 3x3 first convolution (CIFAR stem); this model has the 7x7 "
                             "ImageNet stem. Use a CIFAR-stem architecture (cifar_resnet18, preact_resnet18, wrn28_10) "
                             "or images of at most 64 px")
        if len(file_shape) == 4 and len(model_shape) == 4 and file_shape[1] != model_shape[1] \
                and file_shape[2:] == model_shape[2:] and name == next(iter(module.state_dict()), None):
            hints.append(f"{name}: the file's first layer takes {file_shape[1]} input channels, the data have "
                         f"{model_shape[1]}: use a data set with {file_shape[1]} channels")
        if name == head and file_shape[0] != model_shape[0]:
            hints.append(f"{name}: the file has {file_shape[0]} classes, the data {model_shape[0]}. Evaluate on a data "
                         f"set with {file_shape[0]} classes, or pass model.num_classes={file_shape[0]} to load the file "
                         "and replace the head (the new head is untrained)")
    return hints


def suggest_architectures(state: dict[str, Tensor], current: str, build, candidates) -> list[str]:
    """Registered architectures whose names and shapes fit ``state`` better than ``current``.

    ``build(name, options)`` makes a backbone on the meta device (no memory, no initialisation cost).
    """
    scores = []
    for name, options in candidates:
        try:
            with torch.device("meta"):
                own = build(name, options).state_dict()
        except Exception:  # noqa: BLE001 (a candidate that cannot be built here is no suggestion)
            continue
        fits = sum(1 for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape))
        label = name + "".join(f" model.{k}={v}" for k, v in options.items())
        scores.append((fits / max(len(state), len(own)), label))
    best = max((s for s, label in scores if label != current), default=0.0)
    good = sorted(((s, label) for s, label in scores if label != current and s > 0.5 and s >= best - 0.05),
                  reverse=True)
    return [f"model={label} ({score:.0%} of the names and shapes fit)" for score, label in good[:2]]


def mismatch_message(weights: ForeignWeights, arch: str, mismatch: Mismatch, module: nn.Module,
                     suggestions: list[str]) -> str:
    lines = [f"weights {weights.path} (format {weights.format}) do not fit model={arch}:"]
    if mismatch.missing:
        lines.append(f"  missing from the file: {len(mismatch.missing)} of {len(module.state_dict())} keys, e.g. "
                     f"{_few(mismatch.missing)}")
    if mismatch.unexpected:
        lines.append(f"  unexpected in the file: {len(mismatch.unexpected)} of {len(weights.state)} keys, e.g. "
                     f"{_few(mismatch.unexpected)}")
    for name, file_shape, model_shape in mismatch.shapes[:SHOW]:
        lines.append(f"  shape differs at layer {name}: file {file_shape} vs model {model_shape}")
    if len(mismatch.shapes) > SHOW:
        lines.append(f"  ... {len(mismatch.shapes) - SHOW} more layers differ in shape")
    lines += [f"  hint: {h}" for h in shape_hints(mismatch, module)]
    lines += [f"  hint: the file fits {s}" for s in suggestions]
    if not mismatch.shapes:
        lines.append("  model.strict=false loads the keys that match (missing ones keep their random initialisation)")
    elif mismatch.missing or mismatch.unexpected:
        lines.append("  model.strict=false loads the keys whose names and shapes match (the others keep their random "
                     "initialisation)")
    return "\n".join(lines)


def load_state(module: nn.Module, weights: ForeignWeights, arch: str, strict: bool = True,
               suggest=None) -> Mismatch:
    """Load ``weights.state`` into ``module``; a mismatch raises :class:`WeightsError` (with
    ``strict``) or loads what fits and returns what did not (without).

    ``suggest(state) -> list[str]`` names architectures that fit better, for the error message.
    """
    mismatch = compare(weights.state, module)
    if mismatch and strict:
        suggestions = suggest(weights.state) if suggest is not None else []
        raise WeightsError(mismatch_message(weights, arch, mismatch, module, suggestions))
    skip = {name for name, _, _ in mismatch.shapes}
    fitting = {k: v for k, v in weights.state.items() if k not in skip}
    module.load_state_dict(fitting, strict=False)
    return mismatch


def replace_head(module: nn.Module, num_classes: int) -> str:
    """Give ``module`` a new, freshly initialised classifier with ``num_classes`` outputs.

    timm models use their own ``reset_classifier``; otherwise the last Linear layer is replaced.
    Returns the replaced layer's name.
    """
    if hasattr(module, "reset_classifier") and hasattr(module, "get_classifier"):
        module.reset_classifier(num_classes)
        return "classifier (timm reset_classifier)"
    key = head_key(module)
    if key is None:
        raise WeightsError("cannot replace the head: the model has no Linear layer")
    name = key.removesuffix(".weight")
    old = module.get_submodule(name)
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    parent, _, child = name.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, child, new)
    return name
