"""The registry of explanation methods and what each declares when it is registered.

A method is ``fn(model, x, target, *, generator=None, output="logit", chunk_size=None, **options)``
returning a tensor of the shape of ``x``. :func:`register_method` records its options (read once from
its keyword arguments) and its :class:`MethodInfo` (stochastic, units, broadcast, needs); metrics and
the evaluation read these instead of inspecting a method again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from rxlit.registry import Registry, Signature, read_signature, refuse_renamed

# Options every method accepts: they are routed by explain() and never refused.
COMMON_OPTIONS = ("generator", "output", "chunk_size")


# A method is fn(model, x, target, **options): its options are read once, when it is registered.
METHODS = Registry("explanation method", skip=3, reserved=COMMON_OPTIONS)


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
