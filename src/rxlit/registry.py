"""One registry per kind of plug-in (explanation method, metric, objective, backbone, dataset).

Adding a plug-in is one decorated function plus one config file. An unknown name is refused
with the list of valid names, so a typo on the command line tells the user what to type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


class Registry:
    """A name -> factory mapping with helpful errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable[..., Any]] = {}

    def register(self, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            key = name or fn.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = fn
            return fn

        return decorator

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._items:
            valid = ", ".join(sorted(self._items))
            raise ValueError(f"unknown {self.kind} {name!r}; valid names: {valid}")
        return self._items[name]

    def name_of(self, fn: object) -> str | None:
        """The name ``fn`` is registered under, or None."""
        return next((key for key, item in self._items.items() if item is fn), None)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
