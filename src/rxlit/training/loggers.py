"""Experiment loggers: W&B (offline unless the user is logged in), CSV, TensorBoard, none."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

LOGGERS = ("wandb", "csv", "tensorboard", "none")


def wandb_logged_in() -> bool:
    """True when an API key is available (env var or ~/.netrc), so an online run can start."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_mode(mode: str = "auto") -> str:
    """'auto' means WANDB_MODE if set, else online when logged in, else offline."""
    if mode != "auto":
        return mode
    return os.environ.get("WANDB_MODE") or ("online" if wandb_logged_in() else "offline")


def build_logger(cfg: dict, run_name: str, save_dir: str | Path) -> Logger | None:
    spec = dict(cfg)
    name = spec.pop("name")
    save_dir = str(save_dir)
    if name == "none":
        return None
    if name == "csv":
        return CSVLogger(save_dir=save_dir, name="csv", version="")
    if name == "tensorboard":
        return TensorBoardLogger(save_dir=save_dir, name="tensorboard", version="")
    if name == "wandb":
        mode = wandb_mode(spec.pop("mode", "auto"))
        return WandbLogger(name=run_name, save_dir=save_dir, project=spec.pop("project", "rxlit"),
                           entity=spec.pop("entity", None), tags=list(spec.pop("tags", []) or []),
                           group=spec.pop("group", None), offline=mode == "offline",
                           mode="disabled" if mode == "disabled" else None, **spec)
    raise ValueError(f"unknown logger {name!r}; valid: {', '.join(LOGGERS)}")
