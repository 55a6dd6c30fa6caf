"""Checkpoint folders and weights-only loading for evaluation."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from rxlit.training.module import build_network


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt or not written by rxlit's train.py."""


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code runs) and check its shape."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist: pass ckpt_path=<checkpoints/<run name>/last.ckpt>")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch checkpoint ({err.__class__.__name__}: "
                              f"{str(err).splitlines()[0][:200]}); use another checkpoint, e.g. best.ckpt "
                              "or last.ckpt from the same folder, or retrain") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise CheckpointError(f"checkpoint {path} was not written by rxlit's train.py (no state_dict and "
                              "hyper_parameters); pass a checkpoint from checkpoints/<run name>/")
    return ckpt


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the trained network from a checkpoint (weights only). Returns (model in eval mode, hparams)."""
    ckpt = read_checkpoint(path)
    hp = ckpt["hyper_parameters"]
    reg = dict(hp["reg"])
    if reg.get("name") == "spectral":  # checkpoints from before reg.conv_norm normalised reshaped kernels
        reg.setdefault("conv_norm", "reshaped")
    model = build_network(hp["model"], hp["data_info"], reg)
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {path} does not match the model it describes "
                              f"({str(err).splitlines()[0][:200]}); was it written by another rxlit version?") from err
    return model.to(device).eval(), hp


def unique_run_dir(root: str | Path, run_name: str, resuming: bool) -> Path:
    """checkpoints/<run name>/, or <run name>-2, -3... when that folder already holds checkpoints, so a
    new run never overwrites finished work. A resumed run keeps writing where its checkpoint lives."""
    base = Path(root) / run_name
    if resuming or not any(base.glob("*.ckpt")):
        return base
    n = 2
    while any((Path(root) / f"{run_name}-{n}").glob("*.ckpt")):
        n += 1
    return Path(root) / f"{run_name}-{n}"


def checkpoint_monitor(monitor: str, adv_name: str, eval_examples: int) -> str:
    """``callbacks.checkpoint.monitor``: ``auto`` selects best.ckpt by robust validation accuracy
    (``val/adv_acc``) when the model is trained adversarially, as robust overfitting (Rice et al.
    2020) makes the last or cleanest epoch a poor choice, and by ``val/acc`` for standard training
    (or when the evaluation attack is off). Any logged key can be named instead."""
    if monitor != "auto":
        return monitor
    return "val/adv_acc" if adv_name != "none" and eval_examples > 0 else "val/acc"
