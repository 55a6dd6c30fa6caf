"""Subprocess runs of scripts/train.py for the resume, requeue and sweep tests, and test-only callbacks
that stop a run the way a cluster does (importable by the subprocess: this folder is on its path)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

# 3 epochs of 4 batches, evaluation (tiny) after every epoch, default logger (W&B offline) and bar.
SMALL_RUN = [
    "trainer.max_epochs=3", "trainer.limit_train_batches=4", "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2", "data.batch_size=32", "eval_attack.n_examples=16", "eval_attack.steps=2",
    "adv=pgd", "adv.steps=2", "data.augment=true",
    "explain.every_n_epochs=1", "explain.n_examples=4", "explain.n_saliency_examples=2",
]


class KillAt(Callback):
    """SIGKILL this process when training reaches ``step`` (before that step runs), ``after_s`` seconds
    later (W&B writes its files every 2 s; a kill loses what it had not written yet)."""

    def __init__(self, step: int, after_s: float = 0.0):
        self.step, self.after_s = step, after_s

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            time.sleep(self.after_s)
            os.kill(os.getpid(), signal.SIGKILL)


class SignalAt(Callback):
    """Send ``signum`` to this process at ``step``, as SLURM does before a job's time limit; then let
    ``wait_s`` seconds pass (a slow step)."""

    def __init__(self, step: int, signum: str = "SIGUSR1", wait_s: float = 0.0):
        self.step, self.signum, self.wait_s = step, getattr(signal, signum), wait_s

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)
            time.sleep(self.wait_s)


def callback(name: str, **kwargs) -> str:
    args = "".join(f", {k}: {v}" for k, v in kwargs.items())
    return f"callbacks.extra=[{{_target_: run_helpers.{name}{args}}}]"


def run_train(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 300,
              script: str = "train.py") -> subprocess.CompletedProcess:
    """``python scripts/<script> args`` in ``cwd`` (not checked: the caller looks at the return code)."""
    cwd.mkdir(parents=True, exist_ok=True)
    # not WANDB_SERVICE: a W&B service started by this (pytest) process would outlive a killed run and
    # keep its run id in use; each run starts its own service, as it does on a cluster
    base = {**{k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}, "WANDB_MODE": "offline",
            "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(HERE)])}
    return subprocess.run([sys.executable, str(REPO / "scripts" / script), *args], cwd=cwd,
                          env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def without_times(metrics: dict) -> dict:
    """Logged values minus wall-clock measurements (they differ between any two runs)."""
    return {k: v for k, v in metrics.items() if not k.endswith(("time_s", "cost_fraction"))}


def final_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


# ------------------------------------------------------------------------------- W&B offline files
MEDIA = ("xai/table", "xai/saliency")


def wandb_pieces(run_folder: Path) -> list[tuple[str, dict]]:
    """(run id, offline run) of every W&B offline folder of a run, oldest first."""
    from rxlit.analysis.wandb_offline import find_offline_runs, read_offline_run

    folders = sorted(p for p in find_offline_runs(run_folder) if p.name.startswith("offline-run-"))
    return [(p.name.rsplit("-", 1)[-1], read_offline_run(p, expect={"test/acc"} if p == folders[-1] else set(),
                                                            timeout=60 if p == folders[-1] else 5)) for p in folders]


def logged_values(histories: list[list[dict]]) -> dict[tuple[int, str], list]:
    """{(trainer step, key): [values]} of the scalar metrics (not times, media or W&B's own keys)."""
    out: dict[tuple[int, str], list] = {}
    for history in histories:
        for row in history:
            for key, value in row.items():
                if key.startswith(("_", "trainer/", *MEDIA)) or key.endswith(("time_s", "cost_fraction")):
                    continue
                out.setdefault((row.get("trainer/global_step"), key), []).append(value)
    return out


def wandb_artifacts(offline_folder: Path) -> list[tuple[str, list[str], list[str]]]:
    """(name, aliases, files) of the model artifacts an offline run logged."""
    from wandb.proto import wandb_internal_pb2 as pb

    from rxlit.analysis.wandb_offline import _payloads

    found = []
    for payload in _payloads(next(Path(offline_folder).glob("*.wandb")).read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == "artifact" and record.artifact.type == "model":
            art = record.artifact
            found.append((art.name, sorted(art.aliases), [e.path for e in art.manifest.contents]))
    return found
