"""The project's Hydra configs (``configs/``): where they are, composing them, plain dicts of them.

The one place that knows where ``configs/`` lies and how a config becomes a plain dict, for every
entry point of :mod:`rxlit.app` (training, evaluation, studies, cost measurement).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def compose(overrides: list[str] = (), config_name: str = "train") -> DictConfig:
    """Compose ``configs/<config_name>.yaml`` with ``overrides`` (inside a Hydra app or outside one)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name=config_name, overrides=list(overrides))
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def to_dict(cfg: DictConfig | dict) -> dict:
    """A resolved plain dict of a config (a dict is returned as a shallow copy)."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def resolved(cfg: DictConfig) -> dict:
    """The resolved config, or the unresolved one where a resolver (``${hydra:...}``) is missing."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - outside a Hydra app ${hydra:...} cannot resolve
        return OmegaConf.to_container(cfg, resolve=False)


def config_names(group: str) -> list[str]:
    """The options of a config group, ``configs/<group>/*.yaml``."""
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def group_config(group: str, name: str, seed: int = 0) -> dict:
    """``configs/<group>/<name>.yaml`` resolved (``${seed}`` and ``${oc.env:...}`` included)."""
    path = CONFIGS / group / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no {group} config {name!r}; valid: {', '.join(config_names(group)) or '(configs folder not found)'}")
    root = OmegaConf.create({"seed": seed, group: OmegaConf.load(path)})
    return OmegaConf.to_container(root, resolve=True)[group]
