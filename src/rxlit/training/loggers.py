"""Experiment loggers: W&B (offline unless the user is logged in), CSV, TensorBoard, none."""

from __future__ import annotations

import netrc
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

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


WANDB_MODES = ("auto", "online", "offline", "disabled")
PROBE_TIMEOUT_S = 3.0


def wandb_mode(mode: str = "auto", fallback: str | None = None) -> str:
    """The W&B mode of a run; never one that would prompt or hang.

    'auto': WANDB_MODE if set, else online when logged in, else offline. An explicit mode wins over
    WANDB_MODE (said once when they differ). 'online' without credentials or without a reachable
    server fails at once with the fix, or becomes 'offline' when ``fallback='offline'``.
    """
    if mode not in WANDB_MODES:
        raise ValueError(f"logger.mode={mode!r} is not one of {', '.join(WANDB_MODES)}")
    if fallback not in (None, "offline"):
        raise ValueError(f"logger.fallback={fallback!r}: use null (fail) or offline")
    env = os.environ.get("WANDB_MODE")
    if mode == "auto":
        return env or ("online" if wandb_logged_in() else "offline")
    if env and env != mode:
        print(f"W&B: logger.mode={mode} (config) wins over WANDB_MODE={env} (environment)")
    if mode == "online":
        problem = online_problem()
        if problem and fallback == "offline":
            print(f"W&B: {problem}; logging offline instead (logger.fallback=offline); upload later with wandb sync")
            return "offline"
        if problem:
            raise ValueError(f"logger.mode=online but {problem}. Fix: run `wandb login` (or set WANDB_API_KEY), "
                             "or use logger.mode=offline and `wandb sync` later, or logger.fallback=offline")
    return mode


def online_problem() -> str | None:
    """Why an online W&B run cannot start now (no credentials, server unreachable), or None."""
    if not wandb_logged_in():
        return "no W&B credentials were found (WANDB_API_KEY, ~/.netrc)"
    url = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as err:
        return f"the W&B server {url.hostname}:{port} cannot be reached ({err.__class__.__name__})"
    return None


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
        mode = wandb_mode(spec.pop("mode", "auto"), spec.pop("fallback", None))
        logger = WandbLogger(name=run_name, save_dir=save_dir, project=spec.pop("project", "rxlit"),
                             entity=spec.pop("entity", None), tags=list(spec.pop("tags", []) or []),
                             group=spec.pop("group", None), offline=mode == "offline", mode=mode, **spec)
        logger._wandb_init.pop("anonymous", None)  # Lightning passes a deprecated setting W&B warns about
        return logger
    raise ValueError(f"unknown logger {name!r}; valid: {', '.join(LOGGERS)}")
