"""Guided Backpropagation (Springenberg et al., ICLR 2015 workshop).

The gradient of the target score where every ReLU passes back only positive gradients:
``R_in = (x > 0) * max(R_out, 0)``. This is Captum's ``GuidedBackprop`` rule (it applies
``relu`` to the ReLU's input gradient; ``relu(g * mask) = mask * relu(g)``).

Instead of module hooks we run the forward under a :class:`~torch.overrides.TorchFunctionMode`
that replaces every ReLU call (``nn.ReLU`` modules, ``F.relu``, ``torch.relu``, ``Tensor.relu``,
in place or not) by a guided ReLU. That also covers functional ReLUs, which Captum's hooks miss,
and works with ReLU modules reused several times in one forward. The method is only defined for
ReLU networks: smooth or other activations (GELU, SiLU, Softplus, ELU, LeakyReLU, Tanh, ...) are
refused with an error naming them, both as modules (before running) and as functional calls.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from rxlit.activations import other_activations
from rxlit.explain.passes import map_chunks, scalar_output
from rxlit.explain.registry import register_method

_RELU = {F.relu, torch.relu, Tensor.relu}
_RELU_INPLACE = {F.relu_, torch.relu_, Tensor.relu_}
_OTHER_ACTIVATIONS = {
    F.gelu: "gelu", F.silu: "silu", F.softplus: "softplus", F.elu: "elu", F.selu: "selu",
    F.celu: "celu", F.mish: "mish", F.hardswish: "hardswish", F.hardsigmoid: "hardsigmoid",
    F.leaky_relu: "leaky_relu", F.prelu: "prelu", F.hardtanh: "hardtanh (e.g. ReLU6)",
    F.relu6: "relu6", F.logsigmoid: "logsigmoid", F.tanhshrink: "tanhshrink",
    torch.sigmoid: "sigmoid", Tensor.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    torch.tanh: "tanh", Tensor.tanh: "tanh", F.tanh: "tanh", F.glu: "glu",
}


class _GuidedReLU(torch.autograd.Function):
    """``max(x, 0)`` whose backward is ``(x > 0) * max(grad, 0)``."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        out = x.clamp(min=0)
        ctx.save_for_backward(out > 0)  # save the mask, not x, so x may be overwritten in place
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (mask,) = ctx.saved_tensors
        return grad.clamp(min=0) * mask


class GuidedReLUMode(TorchFunctionMode):
    """Within this mode every ReLU is guided and every other activation is refused."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELU and not kwargs.get("inplace", len(args) > 1 and args[1]):
            return _GuidedReLU.apply(args[0])
        if func in _RELU or func in _RELU_INPLACE:
            return args[0].copy_(_GuidedReLU.apply(args[0]))
        if func in _OTHER_ACTIVATIONS:
            raise ValueError(f"guided_backprop is defined for ReLU networks only; the model calls "
                             f"{_OTHER_ACTIVATIONS[func]}. Use a ReLU backbone or another method.")
        return func(*args, **kwargs)


def check_relu_network(model: nn.Module) -> None:
    """Refuse models whose activation modules are not all ReLU, naming the first offender."""
    others = other_activations(model)
    if others:
        name, module = others[0]
        raise ValueError(f"guided_backprop is defined for ReLU networks only; the model has a "
                         f"{type(module).__name__} activation at {name or '<root>'!r}. "
                         "Use a ReLU backbone or another method.")


def guided_gradient(model: nn.Module, x: Tensor, target: Tensor, output: str = "logit") -> Tensor:
    """The guided-backprop gradient of f for every row of x (one forward, one backward)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        with GuidedReLUMode():
            f = scalar_output(model(x), target, output).sum()
        (grad,) = torch.autograd.grad(f, x)
    return grad


@register_method("guided_backprop", needs="ReLU activations (every nonlinearity an nn.ReLU or F.relu)")
def guided_backprop(model: nn.Module, x: Tensor, target: Tensor, *, output: str = "logit",
                    chunk_size: int | None = None) -> Tensor:
    """Guided Backpropagation (Springenberg et al. 2015); ReLU networks only (see module doc)."""
    check_relu_network(model)
    return map_chunks(lambda xs, ts: guided_gradient(model, xs, ts, output), x, target, chunk_size=chunk_size)
