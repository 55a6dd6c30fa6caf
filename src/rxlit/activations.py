"""Activation modules: which modules are activations, and the swaps and checks that need to know.

Hook-based explanations (guided backprop) and double backprop (gradient-norm regularisation) need
every activation to be its own ``nn.Module``, called once per forward, and never in place. The
backbones are built that way; the helpers here check it and swap activations (e.g. ReLU ->
Softplus for a smooth surrogate). One list serves the models, the explanation methods and the
metrics, so this module sits below all three and imports nothing from rxlit (nor timm: timm's
classes are recognised by the module they live in).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

# Modules that hold activations: torch's own and timm's.
_ACTIVATION_MODULES = ("torch.nn.modules.activation", "timm.layers.activations")
# Classes that live in those modules but are not activations: normalisers of a whole vector and
# attention. GLU is an activation, a gated one (``a * sigmoid(b)`` of the input's two halves, in
# place of the ReLU of an MLP block), so it is *not* here: guided backprop, which is defined for
# ReLU networks only, must refuse a GLU network (its sigmoid gate would pass gradients unguided),
# and activation_kinds must name it. (Two lists used to disagree on this.)
_NOT_ACTIVATIONS = {"Softmax", "Softmin", "LogSoftmax", "Softmax2d", "MultiheadAttention"}


def _is_activation_class(cls: type) -> bool:
    return cls.__module__.startswith(_ACTIVATION_MODULES) and cls.__name__ not in _NOT_ACTIVATIONS


def is_activation(module: nn.Module) -> bool:
    """True for an activation module: ReLU, GELU, SiLU, GLU, timm's GELUTanh, ..., or a subclass of one."""
    return any(_is_activation_class(cls) for cls in type(module).__mro__)


def activation_kinds(model: nn.Module) -> set[str]:
    """Class names of the activation modules in ``model``, e.g. ``{"ReLU"}`` or ``{"GELU"}``.

    Guided backprop is only defined for ReLU networks; it uses this to refuse GELU/SiLU ones.
    """
    return {type(m).__name__ for m in model.modules() if is_activation(m)}


def other_activations(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every activation module that is not an ``nn.ReLU`` (or a subclass)."""
    return [(name, m) for name, m in model.named_modules() if is_activation(m) and not isinstance(m, nn.ReLU)]


def disable_inplace(model: nn.Module) -> int:
    """Set ``inplace=False`` on every module that has the flag; returns how many were changed.

    In-place activations overwrite the tensor that backward hooks and double backprop need.
    """
    changed = 0
    for module in model.modules():
        if getattr(module, "inplace", None) is True:
            module.inplace = False
            changed += 1
    return changed


def replace_activations(
    model: nn.Module,
    factory: Callable[[], nn.Module],
    kind: type[nn.Module] | tuple[type[nn.Module], ...] = nn.ReLU,
) -> int:
    """Replace every ``kind`` module (default ``nn.ReLU``) in ``model`` by ``factory()``, in place.

    Each replaced module gets its own fresh instance. Returns the number of modules replaced.
    Example: ``replace_activations(model, lambda: nn.Softplus(beta=10))``.
    """
    targets = [name for name, m in model.named_modules() if name and isinstance(m, kind)]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, factory())
    return len(targets)
