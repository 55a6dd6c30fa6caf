"""Checkpoint folders and weights-only loading for evaluation."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from rxlit.training.divergence import NonFiniteLossError
from rxlit.training.module import build_network


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt or not written by rxlit's train.py."""


def first_line(err: BaseException, limit: int = 200) -> str:
    lines = str(err).strip().splitlines()
    return f"{err.__class__.__name__}: {lines[0][:limit]}" if lines else err.__class__.__name__


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code runs) and check its shape."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder: pass a file, e.g. ckpt_path={path / 'last.ckpt'}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist: pass ckpt_path=<checkpoints/<run name>/last.ckpt>, "
                              "or ckpt_path=auto to resume the run's last.ckpt when there is one")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is an empty file (a save that was interrupted?); use another "
                              "checkpoint, e.g. best.ckpt from the same folder, or start a new run with ckpt_path=new")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the unpickler raises anything (IndexError, KeyError, ...) on foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch checkpoint ({first_line(err)}); use "
                              "another checkpoint, e.g. best.ckpt or last.ckpt from the same folder, or retrain") from err
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
                              f"({first_line(err)}); was it written by another rxlit version?") from err
    return model.to(device).eval(), hp


# ckpt_path values that are not a file: resume this run's last.ckpt when there is one / start a new run
RESUME_MODES = ("auto", "new")


def on_slurm() -> bool:
    return bool(os.environ.get("SLURM_JOB_ID"))


def resume_mode(ckpt_path: str | None) -> str:
    """'auto', 'new' or 'file'. ``ckpt_path=null`` (the default) is 'auto' inside a SLURM job (a
    requeued job resumes itself) and 'new' elsewhere."""
    if ckpt_path is None:
        return "auto" if on_slurm() else "new"
    return ckpt_path if ckpt_path in RESUME_MODES else "file"


def run_key(run_name: str) -> str:
    """The run's folder name: the run name, plus the task index inside a SLURM job array (tasks of one
    array often share a run name)."""
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{run_name}_a{task}" if task else run_name


def checkpoint_origin(path: str | Path, ckpt: dict) -> dict:
    """Which run, epoch and W&B artifact a checkpoint comes from (recorded by scripts/eval.py)."""
    wandb_run = ckpt.get("wandb_run") or {}
    alias = {"best.ckpt": "best", "last.ckpt": "latest"}.get(Path(path).name)
    artifact = f"{wandb_run['artifact']}:{alias}" if wandb_run.get("artifact") and alias else None
    return {"path": str(Path(path).resolve()), "epoch": ckpt.get("epoch"), "global_step": ckpt.get("global_step"),
            "wandb_run": wandb_run.get("id"), "wandb_project": wandb_run.get("project"), "artifact": artifact}


def unique_run_dir(root: str | Path, name: str) -> Path:
    """<root>/<name>/, or <name>-2, -3... when that folder already holds checkpoints, so a new run never
    overwrites finished work."""
    base = Path(root) / name
    if not any(base.glob("*.ckpt")):
        return base
    n = 2
    while any((Path(root) / f"{name}-{n}").glob("*.ckpt")):
        n += 1
    return Path(root) / f"{name}-{n}"


def checkpoint_monitor(monitor: str, adv_name: str, eval_examples: int) -> str:
    """``callbacks.checkpoint.monitor``: ``auto`` selects best.ckpt by robust validation accuracy
    (``val/adv_acc``) when the model is trained adversarially, as robust overfitting (Rice et al.
    2020) makes the last or cleanest epoch a poor choice, and by ``val/acc`` for standard training
    (or when the evaluation attack is off). Any logged key can be named instead."""
    if monitor != "auto":
        return monitor
    return "val/adv_acc" if adv_name != "none" and eval_examples > 0 else "val/acc"


def run_folder(root: str | Path, run_name: str, ckpt_path: str | None) -> tuple[Path, Path | None]:
    """(checkpoint folder of the run, checkpoint to resume from or None).

    * ``auto``: ``<root>/<run key>/``, resuming its ``last.ckpt`` when it exists: a rerun, a resumed
      run and a requeued SLURM job share one folder (and one output folder and W&B run);
    * ``new``: a new run in ``<root>/<run key>/``, or ``-2``, ``-3``... when that one holds checkpoints;
    * a file: resume it, writing next to it.
    """
    mode = resume_mode(ckpt_path)
    if mode == "file":
        return Path(ckpt_path).parent, Path(ckpt_path)
    if mode == "new":
        return unique_run_dir(root, run_key(run_name)), None
    folder = Path(root) / run_key(run_name)
    last = folder / "last.ckpt"
    return folder, last if last.exists() else None


def run_dir_name(run_name: str, ckpt_path: str | None, checkpoints: str) -> str:
    """The output folder name of a run: its checkpoint folder's name (a Hydra resolver, ``rxlit_run_key``)."""
    return run_folder(checkpoints, run_name, ckpt_path)[0].name


# Config keys that decide the trained weights: a resume that changes one would continue another run.
MODEL_KEYS = ("model", "data", "adv", "reg", "optim", "sched", "seed")
# ...except these, which only say where the data is or how it is loaded.
NEUTRAL_DATA_KEYS = ("root", "num_workers", "pin_memory", "download", "eval_batch_size", "limit_val", "limit_test")


def flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def model_config(cfg: dict) -> dict[str, object]:
    """The dotted keys of ``cfg`` that decide the trained weights (:data:`MODEL_KEYS`)."""
    picked = {k: cfg.get(k) for k in MODEL_KEYS}
    picked["data"] = {k: v for k, v in (picked["data"] or {}).items() if k not in NEUTRAL_DATA_KEYS}
    return flatten(picked)


def check_same_model(saved_cfg: dict | None, cfg: dict, path: str | Path) -> None:
    """Refuse to resume ``path`` with a config that would train another model; name the keys."""
    if not saved_cfg:
        return
    old, new = model_config(saved_cfg), model_config(cfg)
    differ = sorted(k for k in set(old) | set(new) if old.get(k, "<unset>") != new.get(k, "<unset>"))
    if not differ:
        return
    shown = "; ".join(f"{k}: {old.get(k, '<unset>')!r} in the checkpoint, {new.get(k, '<unset>')!r} now"
                      for k in differ[:10])
    more = f" (and {len(differ) - 10} more)" if len(differ) > 10 else ""
    raise CheckpointError(f"cannot resume {path}: the config differs from the checkpoint's in keys that change "
                          f"the model: {shown}{more}. Resume with the checkpoint's values, or start another run: "
                          "ckpt_path=new (a new folder <run name>-2) or another run_name (put a swept key in it, "
                          "e.g. run_name='${data.name}-lr${optim.lr}')")


# ------------------------------------------------------------------------------------ run index
# Keys of a training config that decide the trained weights (the rest is logging and paths): the
# config hash that lets a study reuse any finished run of the same training config.
TRAINING_KEYS = ("data", "model", "adv", "reg", "optim", "sched", "trainer", "seed", "eval_attack", "channels_last")
RUN_INDEX = "run.json"  # <checkpoint folder>/run.json: what the run was and how it ended
# The error of a run the divergence check stopped.
DIVERGED = NonFiniteLossError.__name__


def config_hash(train_cfg: dict) -> str:
    relevant = {k: train_cfg.get(k) for k in TRAINING_KEYS}
    relevant["data"] = {k: v for k, v in (relevant["data"] or {}).items() if k not in ("root", "num_workers", "pin_memory")}
    relevant["trainer"] = {k: v for k, v in (relevant["trainer"] or {}).items()
                           if k not in ("enable_progress_bar", "enable_model_summary", "log_every_n_steps")}
    text = json.dumps(relevant, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def write_run_index(ckpt_dir: str | Path, cfg: dict, report: dict) -> None:
    """``<checkpoint folder>/run.json``: run name, config hash, status, checkpoints, test metrics."""
    index = {"run_name": report.get("run_name"), "config_hash": config_hash(cfg), "status": report.get("status"),
             "best_checkpoint": report.get("best_checkpoint"), "last_checkpoint": report.get("last_checkpoint"),
             "output_dir": report.get("output_dir"), "epochs": report.get("epochs"), "test": report.get("test", {}),
             "wall_time_s": report.get("wall_time_s"), "error": report.get("error")}
    path = Path(ckpt_dir) / RUN_INDEX
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(index, indent=2))


def run_error(index: dict) -> str:
    """The error that ended a failed run: from its index, else from its ``metrics.json``."""
    if index.get("error"):
        return str(index["error"])
    try:
        return str(json.loads((Path(index.get("output_dir") or "") / "metrics.json").read_text()).get("error") or "")
    except (OSError, ValueError):
        return ""


def run_indexes(root: str | Path, wanted_hash: str, prefer: str | None = None) -> Iterator[dict]:
    """The readable run indexes under ``root`` whose config hash is ``wanted_hash``: the folder
    ``prefer`` first, then any other (e.g. a run made with ``train.py -m``)."""
    root = Path(root)
    candidates = sorted(root.glob(f"*/{RUN_INDEX}"))
    if prefer and (root / prefer / RUN_INDEX).is_file():
        candidates.insert(0, root / prefer / RUN_INDEX)
    for path in candidates:
        try:
            index = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if index.get("config_hash") == wanted_hash:
            yield index


def find_diverged_run(root: str | Path, wanted_hash: str, prefer: str | None = None) -> dict | None:
    """The index of a run with config hash ``wanted_hash`` that the divergence check stopped (its
    training loss exploded: a property of that configuration, not an accident to retry), or None."""
    for index in run_indexes(root, wanted_hash, prefer):
        error = run_error(index) if index.get("status") == "failed" else ""
        if error.startswith(DIVERGED):
            return {**index, "error": error}
    return None


def find_finished_run(root: str | Path, wanted_hash: str, prefer: str | None = None) -> dict | None:
    """The index of a finished run under ``root`` whose config hash is ``wanted_hash`` (the folder
    ``prefer`` first, then any other, e.g. a run made with ``train.py -m``), or None."""
    for index in run_indexes(root, wanted_hash, prefer):
        best = index.get("best_checkpoint") or index.get("last_checkpoint")
        if index.get("status") == "finished" and best and Path(best).is_file():
            return index
    return None
