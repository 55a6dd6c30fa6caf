"""One registry per kind of plug-in (explanation method, metric, objective, backbone, dataset).

Adding a plug-in is one decorated function plus one config file. What the rest of rxlit needs to know
about a plug-in (its options and their defaults, and whatever its kind declares: a method's units, a
metric's direction) is recorded when it is registered, so no caller inspects a plug-in again. An unknown
name is refused with the list of valid names, so a typo on the command line tells the user what to type.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

# One name per idea: options renamed since, per plug-in (method or metric) name, old -> new. Methods'
# and metrics' option checks refuse an old name with the new one rather than ignore or misread it.
RENAMED_OPTIONS: dict[str, dict[str, str]] = {
    "smoothgrad": {"n": "n_samples"},
    "unigrad": {"n": "n_samples"},
    "smoothed": {"n": "n_samples"},
    "lime": {"alpha": "ridge_alpha"},
    "robust_accuracy": {"alpha": "step"},
    "adversarial_sensitivity": {"step_size": "step"},
}


def refuse_renamed(name: str | None, options) -> None:
    """Raise ``ValueError`` when ``options`` (names) holds an option of plug-in ``name`` that was renamed."""
    renamed = RENAMED_OPTIONS.get(name or "", {})
    for old in options:
        if old in renamed:
            raise ValueError(f"option {old!r} of {name} was renamed {renamed[old]!r}")


@dataclass(frozen=True)
class Signature:
    """The keyword options of a plug-in, read once from its signature when it is registered.

    ``options``: name -> default (None when it has no default) of the plug-in's own options;
    ``accepts``: every keyword it takes, the reserved ones (filled in by the caller) included;
    ``any_keyword``: it takes ``**kwargs`` (so it accepts whatever it is given).
    """

    options: dict[str, Any] = field(default_factory=dict)
    accepts: frozenset[str] = frozenset()
    any_keyword: bool = False

    def takes(self, name: str) -> bool:
        return self.any_keyword or name in self.accepts


def read_signature(fn: Callable, skip: int = 0, reserved: tuple[str, ...] | set[str] = ()) -> Signature:
    """The :class:`Signature` of ``fn``, its first ``skip`` parameters (e.g. ``model, x, target``) and
    the ``reserved`` names left out of ``options``."""
    params = list(inspect.signature(fn).parameters.values())
    named = [p for p in params[skip:] if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    options = {p.name: None if p.default is p.empty else p.default for p in named if p.name not in reserved}
    return Signature(options, frozenset(p.name for p in named), any(p.kind == p.VAR_KEYWORD for p in params))


class Registry:
    """A name -> factory mapping with helpful errors and each entry's declared metadata.

    ``skip`` and ``reserved`` say which parameters of a registered function are not its options (the
    leading positional arguments, and names the caller fills in itself).
    """

    def __init__(self, kind: str, skip: int = 0, reserved: tuple[str, ...] | set[str] = ()):
        self.kind = kind
        self.skip = skip
        self.reserved = set(reserved)
        self._items: dict[str, Callable[..., Any]] = {}
        self._info: dict[str, Any] = {}
        self._signatures: dict[str, Signature] = {}

    def register(self, name: str | None = None, info: Any = None,
                 options: dict[str, Any] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a factory under ``name`` with its declared ``info``; ``options`` (name -> default)
        replaces the options read from the signature, for a function that takes ``**kwargs``."""
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            key = name or fn.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            signature = read_signature(fn, self.skip, self.reserved)
            if options is not None:
                signature = Signature(dict(options), signature.accepts | set(options), signature.any_keyword)
            self._items[key], self._info[key], self._signatures[key] = fn, info, signature
            return fn

        return decorator

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._items:
            valid = ", ".join(sorted(self._items))
            raise ValueError(f"unknown {self.kind} {name!r}; valid names: {valid}")
        return self._items[name]

    def info(self, name: str) -> Any:
        """What ``name`` declared when it was registered."""
        self.get(name)
        return self._info[name]

    def signature(self, name: str) -> Signature:
        self.get(name)
        return self._signatures[name]

    def options(self, name: str) -> dict[str, Any]:
        """The options of ``name`` and their defaults (None: no default)."""
        return dict(self.signature(name).options)

    def name_of(self, fn: object) -> str | None:
        """The name ``fn`` is registered under, or None."""
        return next((key for key, item in self._items.items() if item is fn), None)

    def build(self, group: str, name: str, /, **options: Any) -> Any:
        """``get(name)(**options)``; options it does not take (or lacks) raise ValueError naming
        ``<group>=<name>``, as the config sets it (``adv=pgd``)."""
        factory = self.get(name)
        try:
            return factory(**options)
        except TypeError as err:
            raise ValueError(f"bad options for {group}={name}: {err}") from err

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
