"""The registry of reproduction studies.

A study is a function ``run(ctx) -> dict`` registered here under its name (the modules of
:mod:`rxlit.analysis.studies` register themselves on import). ``ctx`` is the study's context, built
by :mod:`rxlit.app.study`: its settings (``configs/experiment/<name>.yaml``, under ``study:``), its
trained models (``ctx.model(key, seed)``), its fixed evaluation subset (``ctx.subset()``) and the
keys of its random numbers (``ctx.keyed()``). The returned dict (tables, curves, scatters, claims)
goes into ``results.json``, which :mod:`rxlit.analysis.report` turns into a report.
"""

from __future__ import annotations

from collections.abc import Callable

STUDIES: dict[str, Callable] = {}


def register_study(name: str):
    """Register ``run(ctx) -> dict`` as the study ``name`` (``experiment=<name>``)."""
    def decorator(fn):
        STUDIES[name] = fn
        return fn

    return decorator


def load_studies() -> dict[str, Callable]:
    """Every study, registered."""
    from rxlit.analysis import studies  # noqa: F401  (importing the package registers them)

    return STUDIES
