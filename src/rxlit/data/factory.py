"""Build a data module from a name and keyword arguments (a Hydra ``data`` config)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import DATASETS, RxDataModule


def _plain(value: Any) -> Any:
    """OmegaConf containers -> plain Python (lists for mean/std, dicts for attack)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return value
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def valid_keys(name: str) -> list[str]:
    """The constructor keys of data set ``name`` (what ``configs/data/<name>.yaml`` may set)."""
    return list(DATASETS.options(name))


def build_datamodule(name: str, **kwargs: Any) -> RxDataModule:
    """Build the registered data module ``name`` from keyword arguments.

    ``attack`` (the data set's default attack budget, read by the training code as
    ``cfg.data.attack``) is not a constructor argument: it is stripped here and stored on the
    module as ``dm.attack`` (the class default when absent). Unknown names raise ValueError
    listing the valid names; unknown keys raise TypeError listing the valid keys.
    """
    cls = DATASETS.get(name)
    kwargs = {key: _plain(value) for key, value in kwargs.items()}
    attack = kwargs.pop("attack", None)
    unknown = sorted(set(kwargs) - set(valid_keys(name)))
    if unknown:
        raise TypeError(
            f"unknown option(s) for dataset {name!r}: {', '.join(unknown)}; valid keys: {', '.join(valid_keys(name))}, attack"
        )
    dm = cls(**kwargs)
    if attack is not None:
        if not isinstance(attack, Mapping):
            raise ValueError(f"data.attack must be a mapping of attack settings, got {attack!r}")
        dm.attack = dict(attack)
    return dm


def datamodule_from_config(cfg: Mapping[str, Any]) -> RxDataModule:
    """``build_datamodule`` from a whole ``data`` config (a dict or DictConfig holding ``name``)."""
    kwargs = dict(_plain(cfg))
    if "name" not in kwargs:
        raise ValueError(f"the data config needs a 'name'; valid names: {', '.join(DATASETS.names())}")
    return build_datamodule(kwargs.pop("name"), **kwargs)
