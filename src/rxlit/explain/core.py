"""The explanation entry point: :func:`explain` (any registered method, or any callable, on a
batch of [0, 1] images) and the target convention.

An explanation method is a function ``(model, x, target, **options) -> Tensor`` with the shape
of ``x``, batched over the first dimension and deterministic given a generator (see
:mod:`rxlit.rng`). It needs no Lightning: any ``nn.Module`` mapping [0, 1] images to logits works.
Methods and their metadata: :mod:`rxlit.explain.registry`; the shared passes: :mod:`rxlit.explain.passes`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rxlit.explain.passes import eval_mode
from rxlit.explain.registry import check_options, get_method, signature_of


def resolve_target(model: nn.Module, x: Tensor, target: Tensor | int | None) -> Tensor:
    """``None`` means the predicted class; an int is broadcast over the batch."""
    if target is None:
        with torch.no_grad():
            return model(x).argmax(dim=1)
    if isinstance(target, int):
        return torch.full((x.shape[0],), target, dtype=torch.long, device=x.device)
    target = torch.as_tensor(target, device=x.device).long().reshape(-1)
    if target.numel() != x.shape[0]:
        raise ValueError(f"target has {target.numel()} entries but x has {x.shape[0]} examples")
    return target


def _check_input(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() < 2:
        raise ValueError("x must be a batched tensor of shape (B, ...) in [0, 1] pixel space")
    # One reduction, no mask: a finite sum proves every entry finite (the elementwise check,
    # run only when the sum is not, cost more than a small model's gradient).
    if not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
        raise ValueError("x contains NaN or inf; explanations are undefined there")


def explain(model: nn.Module, x: Tensor, target: Tensor | int | None = None, method: str | Callable = "grad",
            generator=None, **options) -> Tensor:
    """Explain ``model`` at ``x`` for ``target`` (default: the predicted class).

    ``method`` is a registered name (see :func:`list_methods`) or any callable
    ``(model, x, target) -> Tensor``. Options not accepted by the method are refused.
    The model is evaluated in eval mode; every module's train/eval flag is restored after.
    """
    _check_input(x)
    fn = get_method(method)
    check_options(fn, options)
    if generator is not None and signature_of(fn).takes("generator"):
        options["generator"] = generator
    with eval_mode(model):
        target = resolve_target(model, x, target)
        out = fn(model, x, target, **options)
    if out.shape != x.shape:
        raise RuntimeError(f"method returned shape {tuple(out.shape)} for input {tuple(x.shape)}")
    return out
