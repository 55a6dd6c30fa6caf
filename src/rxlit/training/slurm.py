"""SLURM: Lightning's SLURM environment, and a requeue before the time limit that resumes exactly.

``sbatch --signal=USR1@180`` makes SLURM send SIGUSR1 to the job 180 s before its time limit.
Lightning's own handler (``SLURMEnvironment(auto_requeue=True)``) saves a checkpoint at whatever
point of a training step the signal arrives and requeues the job; a run resumed from such a
checkpoint cannot repeat the uninterrupted run (the loader position and the epoch's running metrics
are not in it). rxlit keeps Lightning's SLURM environment (ranks, nodes, addresses) with its
auto-requeue off and does the requeue itself, at an epoch boundary:

* on the signal the run carries on until its epoch ends (``last.ckpt`` is written at the very end of
  every epoch), then requeues the job (``scontrol requeue``, Lightning's command) and stops;
* if the epoch has not ended ``slurm.grace_s`` seconds after the signal, it requeues at once and
  stops at the next step: the requeued job repeats the unfinished epoch from the previous
  ``last.ckpt``.

Either way the requeued job runs the same command; ``ckpt_path`` is ``auto`` in a SLURM job, so it
resumes the run's ``last.ckpt`` in the same folders and W&B run, exactly. Under Hydra's submitit
launcher (``hydra/launcher=slurm``) submitit requeues on its own signal and this handler stays off.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time

from lightning.pytorch import Callback

from rxlit.distributed import collective_section

log = logging.getLogger(__name__)


class JobRequeued(Exception):
    """Raised to stop a run whose SLURM job was requeued; :func:`rxlit.app.train.train` reports it."""


def in_slurm_batch_job() -> bool:
    """A SLURM job step Lightning treats as a cluster job (not ``salloc``'s interactive shell)."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    return bool(os.environ.get("SLURM_JOB_ID")) and SLURMEnvironment.detect()


def under_submitit() -> bool:
    return bool(os.environ.get("SUBMITIT_EXECUTOR"))


def slurm_plugins() -> list:
    """Lightning's SLURM environment with its mid-step auto-requeue off (rxlit requeues at epoch ends)."""
    if not in_slurm_batch_job():
        return []
    from lightning.fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)]


def job_to_requeue() -> str:
    """The id ``scontrol requeue`` takes: the array task (``<array job>_<task>``) or the job."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array_job}_{task}" if array_job and task else os.environ["SLURM_JOB_ID"]


def parse_signal(name: str | int | None) -> signal.Signals | None:
    if name is None:
        return None
    if isinstance(name, int):
        return signal.Signals(name)
    text = str(name).upper()
    try:
        return signal.Signals[text if text.startswith("SIG") else f"SIG{text}"]
    except KeyError:
        raise ValueError(f"slurm.requeue_signal={name!r} is not a signal name (e.g. SIGUSR1, USR2) or null") from None


def slurm_gpus(accelerator: str, devices) -> int | None:
    """GPUs per node for configs/hydra/launcher/slurm.yaml: trainer.devices on GPU runs, none on CPU."""
    if str(accelerator) == "cpu":
        return None
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(f"hydra/launcher=slurm needs trainer.devices as a number of GPUs per node, got {devices!r}")
    return devices


def check_slurm(spec: dict | None) -> None:
    spec = spec or {}
    parse_signal(spec.get("requeue_signal"))
    grace = spec.get("grace_s", 60)
    if not isinstance(grace, int | float) or grace < 0:
        raise ValueError(f"slurm.grace_s must be a number of seconds >= 0, got {grace!r}")


def requeue_callback(spec: dict | None) -> list[Callback]:
    """The requeue handler when this process is a SLURM batch job not run by submitit."""
    spec = spec or {}
    signum = parse_signal(spec.get("requeue_signal"))
    if signum is None or not in_slurm_batch_job() or under_submitit():
        return []
    return [SlurmRequeue(signum, float(spec.get("grace_s", 60)))]


class SlurmRequeue(Callback):
    """On ``signum``: requeue the job at the end of the current epoch, or after ``grace_s`` seconds."""

    def __init__(self, signum: signal.Signals, grace_s: float):
        self.signum, self.grace_s = signum, grace_s
        self.signalled_at: float | None = None
        self.requeued = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._previous = None
        self._global_zero = True

    # ------------------------------------------------------------------------------------ signal
    def setup(self, trainer, pl_module, stage: str) -> None:
        self._global_zero = trainer.is_global_zero
        if stage == "fit" and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(self.signum, self._on_signal)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
            self._previous = None

    def _on_signal(self, signum, frame) -> None:
        if self.signalled_at is not None:
            return
        self.signalled_at = time.monotonic()
        log.info("SLURM sent %s: requeueing at the end of this epoch, or in %.0f s at the latest",
                 signal.Signals(signum).name, self.grace_s)
        self._timer = threading.Timer(self.grace_s, self.requeue)
        self._timer.daemon = True
        self._timer.start()

    # ------------------------------------------------------------------------------------ requeue
    def requeue(self) -> None:
        """``scontrol requeue`` (rank 0; once). SLURM then stops the job and queues it again."""
        if not self._global_zero:  # SLURM stops every rank of the job once rank 0 requeues it
            return
        with self._lock:
            if self.requeued:
                return
            self.requeued = True
        job = job_to_requeue()
        try:
            result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
            ok, why = result.returncode == 0, (result.stderr or result.stdout).strip()
        except (OSError, subprocess.TimeoutExpired) as err:
            ok, why = False, str(err)
        if ok:
            log.info("requeued SLURM job %s", job)
        else:  # keep training: better a run stopped by the time limit than one that gave up early
            log.warning("scontrol requeue %s failed (%s); the run continues until the time limit; "
                        "resubmit it later with ckpt_path=auto", job, why)
            self.requeued = False

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        """The previous epoch is complete and its last.ckpt written: requeue now if signalled."""
        wanted = self.signalled_at is not None
        if trainer.world_size > 1:  # every rank decides the same, even if the signal reached only some
            with collective_section(trainer, "the SLURM requeue decision"):
                wanted = trainer.strategy.reduce_boolean_decision(wanted, all=False)
        if not wanted:
            return
        if self._timer is not None:
            self._timer.cancel()
        self.requeue()
        done = self.requeued
        if trainer.world_size > 1:
            done = self.requeued = trainer.strategy.broadcast(done, src=0)
        if done:
            raise JobRequeued(f"SLURM job {job_to_requeue()} requeued before epoch {trainer.current_epoch}; "
                              "the requeued job resumes from last.ckpt (ckpt_path=auto)")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.requeued:  # the grace period ran out mid-epoch: stop now, the job is being requeued
            raise JobRequeued(f"SLURM job {job_to_requeue()} requeued in the middle of epoch "
                              f"{trainer.current_epoch}; the requeued job repeats it from last.ckpt")
