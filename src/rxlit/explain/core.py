"""The explanation API: one registry, one entry point, shared helpers.

An explanation method is a function ``(model, x, target, **options) -> Tensor`` with the shape
of ``x``, batched over the first dimension and deterministic given a generator (see
:mod:`rxlit.rng`). It needs no Lightning: any ``nn.Module`` mapping [0, 1] images to logits works.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rxlit.registry import Registry, Signature, read_signature, refuse_renamed

# Options every method accepts: they are routed by explain() and never refused.
COMMON_OPTIONS = ("generator", "output", "chunk_size")

# A method is fn(model, x, target, **options): its options are read once, when it is registered.
METHODS = Registry("explanation method", skip=3, reserved=COMMON_OPTIONS)

# Default memory budget for one chunk of a flattened perturbation set on an accelerator.
DEFAULT_BUDGET_BYTES = 256 * 2**20
# On a CPU the passes run fastest when a chunk's activations stay near the caches: on a small
# ResNet at 3x32x32, 32-64-row chunks took 0.75-0.9x the time per row of 341-row ones (the
# accelerator budget); 64 MiB is 85 rows there, and the budget rxlit.metrics uses on CPUs.
CPU_BUDGET_BYTES = 64 * 2**20


# Units of an explanation: a slope ``d f / d x_i`` (Grad, SmoothGrad) or an output difference
# credited to a feature (Grad x Input, IG, occlusion, LIME and KernelSHAP on binary features).
UNITS = ("slope", "attribution")


@dataclass(frozen=True)
class MethodInfo:
    """What metrics need to know about a method, declared when it is registered.

    ``stochastic``: it draws random numbers, so robustness metrics give it the same draws at x and
    at every neighbour (common random numbers). ``units``: ``"slope"`` or ``"attribution"`` (see
    :data:`UNITS`); ``"base"`` means those of the method named by its ``base`` option; ``None``
    (an undeclared callable) means unknown. ``broadcast``: for an attribution whose value is the
    output difference of a whole feature copied to each of its elements (LIME, KernelSHAP,
    occlusion), ``broadcast(x, options)`` gives every element's feature size (shape of x), so a
    value per element is ``value / size``; None: every element carries its own share (GI, IG).
    ``needs``: what the model must have for the method to apply (None: any differentiable model).
    """

    stochastic: bool = False
    units: str | None = "slope"
    broadcast: Callable[[Tensor, dict], Tensor] | None = None
    needs: str | None = None


def register_method(name: str, *, stochastic: bool = False, units: str = "slope",
                    broadcast: Callable[[Tensor, dict], Tensor] | None = None, needs: str | None = None):
    """Register ``fn(model, x, target, *, generator=None, output="logit", chunk_size=None, **opts)``
    with its :class:`MethodInfo` (``stochastic``, ``units``, ``broadcast``, ``needs``); its options
    and their defaults are read from its keyword arguments here, once."""
    info = MethodInfo(stochastic, units, broadcast, needs)
    check_units(units, allow_base=True)

    def decorator(fn: Callable) -> Callable:
        METHODS.register(name, info)(fn)
        return declare(fn, info)

    return decorator


def check_units(units: str | None, allow_base: bool = False) -> None:
    valid = (*UNITS, "base") if allow_base else UNITS
    if units not in valid:
        raise ValueError(f"unknown units {units!r}; valid: {', '.join(valid)}")


def declare(fn: Callable, info: MethodInfo) -> Callable:
    """Attach ``info`` and the options of its signature to a callable method (e.g. a wrapper binding
    a registered method's options)."""
    fn.method_info = info
    fn.method_signature = read_signature(fn, 3, COMMON_OPTIONS)
    return fn


def signature_of(method: str | Callable) -> Signature:
    """The options a method takes: read when it was registered or declared; for any other callable
    (a user's function given to :func:`explain`), read from its signature now."""
    fn = get_method(method)
    found = getattr(fn, "method_signature", None)
    return found if found is not None else read_signature(fn, 3, COMMON_OPTIONS)


def bound_info(method: str | Callable, options: dict | None) -> MethodInfo:
    """:func:`method_info` with ``broadcast`` bound to ``options`` (for a wrapper that binds them)."""
    info = method_info(method, options)
    if info.broadcast is None:
        return info
    resolved = {**method_options(get_method(method)), **(options or {})}
    return MethodInfo(info.stochastic, info.units, lambda x, _: info.broadcast(x, resolved), info.needs)


def method_info(method: str | Callable, options: dict | None = None) -> MethodInfo:
    """The declared :class:`MethodInfo` of a method, with ``units="base"`` resolved from ``options``.

    An undeclared callable counts as stochastic when it takes a ``generator`` (so metrics give it
    common random numbers) and has unknown units (``None``).
    """
    fn = get_method(method)
    info = getattr(fn, "method_info", None)
    if info is None:
        return MethodInfo(stochastic=signature_of(fn).takes("generator"), units=None)
    if info.units == "base":
        options = options or {}
        base = options.get("base", method_options(fn).get("base"))
        base_options = {**method_options(get_method(base)), **(options.get("base_options") or {})}
        found = method_info(base, base_options)
        spread = None if found.broadcast is None else lambda x, _: found.broadcast(x, base_options)
        return MethodInfo(info.stochastic, found.units, spread, found.needs)
    return info


def method_options(method: str | Callable) -> dict[str, object]:
    """The method-specific options and their defaults (excluding the common ones)."""
    return dict(signature_of(method).options)


def list_methods() -> dict[str, dict[str, object]]:
    """Every registered method with what it declared: ``options`` (name -> default), ``stochastic``,
    ``units`` and ``needs``."""
    out = {}
    for name in METHODS.names():
        info = METHODS.info(name)
        out[name] = {"options": METHODS.options(name), "stochastic": info.stochastic, "units": info.units,
                     "needs": info.needs}
    return out


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


def scalar_output(logits: Tensor, target: Tensor, output: str = "logit") -> Tensor:
    """The explained scalar f per row: the target's logit (default) or softmax probability."""
    if output == "logit":
        return logits.gather(1, target.view(-1, 1)).squeeze(1)
    if output == "prob":
        return logits.softmax(dim=1).gather(1, target.view(-1, 1)).squeeze(1)
    raise ValueError(f"unknown output {output!r}; valid: 'logit', 'prob'")


def forward_scalar(model: nn.Module, x: Tensor, target: Tensor, output: str = "logit") -> Tensor:
    return scalar_output(model(x), target, output)


def input_gradient(model: nn.Module, x: Tensor, target: Tensor, output: str = "logit",
                   create_graph: bool = False) -> Tensor:
    """d f_target / d x for every row of x, in one forward and one backward pass."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        f = forward_scalar(model, x, target, output)
        (grad,) = torch.autograd.grad(f.sum(), x, create_graph=create_graph)
    return grad


def chunk_rows(x: Tensor, budget_bytes: int | None = None, activation_factor: int = 64) -> int:
    """Rows per chunk so that inputs times an activation multiplier fit the memory budget
    (default: :data:`CPU_BUDGET_BYTES` for CPU tensors, :data:`DEFAULT_BUDGET_BYTES` otherwise)."""
    if budget_bytes is None:
        budget_bytes = CPU_BUDGET_BYTES if x.device.type == "cpu" else DEFAULT_BUDGET_BYTES
    row_bytes = max(1, x[0].numel() * x.element_size() * activation_factor)
    return max(1, budget_bytes // row_bytes)


def iter_chunks(n_rows: int, chunk_size: int) -> Iterator[slice]:
    for start in range(0, n_rows, chunk_size):
        yield slice(start, min(start + chunk_size, n_rows))


def map_chunks(fn: Callable[..., Tensor], *tensors: Tensor, chunk_size: int | None = None) -> Tensor:
    """Apply ``fn`` to row-chunks of the tensors (all with the same first dim) and concatenate."""
    n = tensors[0].shape[0]
    size = chunk_size or chunk_rows(tensors[0])
    if size >= n:
        return fn(*tensors)
    return torch.cat([fn(*(t[rows] for t in tensors)) for rows in iter_chunks(n, size)])


def score_rows(model: nn.Module, build: Callable[[Tensor], Tensor], target: Tensor, n: int,
               output: str = "logit", chunk_size: int | None = None, like: Tensor | None = None) -> Tensor:
    """f at ``B * n`` perturbed inputs, built lazily chunk by chunk; returns (B, n).

    ``build(rows)`` maps flat row indices ``b * n + j`` to the model inputs of those rows, so a
    chunk never materialises more than ``chunk_size`` inputs (the memory budget of
    :func:`chunk_rows` applied to ``like``, one input row, when not given). A chunk of ``n`` rows
    or more is rounded down to whole examples, so ``build`` may rely on: ``len(rows)`` is a
    multiple of ``n`` exactly when the chunk holds whole examples (then it can broadcast each
    example over its ``n`` rows instead of gathering it row by row).
    """
    batch = target.shape[0]
    size = chunk_size or (chunk_rows(like) if like is not None else batch * n)
    if size >= n:
        size = size // n * n
    rows = torch.arange(batch * n, device=target.device)

    def run(r: Tensor) -> Tensor:
        with torch.no_grad():
            return forward_scalar(model, build(r), target[r // n], output)

    return map_chunks(run, rows, chunk_size=size).view(batch, n)


def gradient_rows(model: nn.Module, inputs: Tensor, target: Tensor, output: str = "logit",
                  chunk_size: int | None = None) -> Tensor:
    """d f / d x at every row of ``inputs`` (targets per row), in memory-budgeted chunks."""
    return map_chunks(lambda xs, ts: input_gradient(model, xs, ts, output), inputs, target,
                      chunk_size=chunk_size)


@contextmanager
def eval_mode(model: nn.Module):
    """Evaluate ``model`` in eval mode and restore every module's own train/eval flag after.

    Explanations are properties of the trained function: BatchNorm must use its running
    statistics (else an example's explanation depends on its batch and the statistics drift)
    and dropout must be off.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def check_options(fn: Callable, options: dict) -> None:
    """Refuse options that ``fn`` does not accept, listing the valid ones (a renamed one: its new name)."""
    refuse_renamed(METHODS.name_of(fn), options)
    signature = signature_of(fn)
    if signature.any_keyword:
        return
    unknown = sorted(set(options) - signature.accepts)
    if unknown:
        valid = sorted(set(signature.options) | (set(COMMON_OPTIONS) & signature.accepts))
        raise ValueError(f"unknown option(s) {unknown} for method {getattr(fn, '__name__', fn)!r}; "
                         f"valid options: {valid}")


def get_method(method: str | Callable) -> Callable:
    """A registered method by name, or the callable itself."""
    if callable(method) and not isinstance(method, str):
        return method
    return METHODS.get(method)


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


@register_method("grad")
def grad(model: nn.Module, x: Tensor, target: Tensor, *, output: str = "logit",
         chunk_size: int | None = None) -> Tensor:
    """Vanilla (signed) gradient of the target score, Simonyan et al. 2014 ("Grad" in Tan & Tian 2023)."""
    return gradient_rows(model, x, target, output, chunk_size)
