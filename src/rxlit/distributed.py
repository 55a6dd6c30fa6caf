"""Cross-rank communication that cannot deadlock, and a hang that becomes an error.

Why this exists. Lightning reduces a value logged with ``sync_dist=True`` lazily, the first time
anything reads the epoch's metrics. A rank-0-only hook (the rich or tqdm progress bar draws on
rank 0 only) can therefore start that all-reduce on rank 0 while the other ranks start it later,
when Lightning itself reads the metrics at the end of the epoch. If a hook on every rank runs a
collective of its own in between (the explanation evaluation gathers its per-example values),
rank 0 waits in the metric all-reduce and rank 1 in the evaluation's all-gather: neither returns.

:func:`collective_section` removes the window. On entry and on exit it reads the epoch's metrics
on every rank (``trainer.callback_metrics``, exactly what Lightning's ``ModelCheckpoint`` does on
every rank), which runs every pending metric reduction, in the same order on every rank; a rank
whose progress bar already ran them reads its cache and communicates nothing, so every rank's next
collective is the same one whatever callbacks, progress bar or logger run before or after. Every
rxlit hook that communicates across ranks runs inside one: the explanation evaluation, the
adversarial-accuracy reduction of ``val/adv_acc`` and the NaN check of every training step (which
skips the flush: step values are never synchronised, so nothing is pending there). Checkpoints are saved by
Lightning's ``ModelCheckpoint`` (which reads the metrics on every rank itself); W&B files and
JSON are written by rank 0 without any collective.

A collective that waits longer than ``trainer.timeout_min`` (the DDP process-group timeout,
:func:`ddp_strategy`) raises in the waiting rank; :func:`explain_collective_failure` turns that
error into a :class:`CollectiveTimeoutError` that names the section that was waiting, the likely
causes and the checkpoint to resume from.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

DEFAULT_TIMEOUT_MIN = 30.0
# Words of the errors torch.distributed raises when a peer never arrives or has gone away
# (gloo: "Timed out waiting 20000ms for recv operation", "Connection closed by peer";
# NCCL watchdog: "Watchdog caught collective operation timeout").
_HANG_WORDS = ("timed out", "timeout", "connection closed by peer", "connection reset by peer")

_failed_section: list[str] = []  # where a collective failed, for the error message


class CollectiveTimeoutError(RuntimeError):
    """A cross-rank collective waited longer than ``trainer.timeout_min``."""


def flush_metric_reductions(trainer) -> None:
    """Run every pending reduction of logged metrics now, on this rank (a no-op where already run)."""
    _ = trainer.callback_metrics


@contextmanager
def collective_section(trainer, name: str, flush: bool = True) -> Iterator[None]:
    """Run the body's collectives with no pending metric reduction before or after them.

    Every rank must enter the section at the same point (a hook that runs on every rank). ``name``
    is what a timeout error reports as the place the rank was waiting.
    """
    # flush=False: inside training_step, where Lightning has no reduction pending (keeps the hot path light)
    distributed = flush and trainer is not None and trainer.world_size > 1
    try:
        if distributed:
            flush_metric_reductions(trainer)
        yield
        if distributed:  # the body may have logged sync_dist values: reduce them here, everywhere
            flush_metric_reductions(trainer)
    except RuntimeError as err:
        if is_collective_failure(err) and not _failed_section:
            _failed_section.append(name)  # the innermost section: reported by explain_collective_failure
        raise


def ddp_strategy(name: str, timeout_min: float | None):
    """The named Lightning strategy with a process-group timeout of ``timeout_min`` minutes, for the
    DDP family (``ddp``, ``ddp_spawn``, ``ddp_find_unused_parameters_true``, ...); other names and
    ``timeout_min=None`` are returned unchanged, for Lightning to resolve."""
    if timeout_min is None or not isinstance(name, str):
        return name
    if timeout_min <= 0:
        raise ValueError(f"trainer.timeout_min must be > 0 minutes, got {timeout_min}")
    from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry

    entry = StrategyRegistry[name] if name in StrategyRegistry else None
    if entry is None or not issubclass(entry["strategy"], DDPStrategy):
        return name
    return entry["strategy"](**entry["init_params"], timeout=timedelta(minutes=float(timeout_min)))


def stop_other_ranks(trainer) -> None:
    """Kill the processes this one launched (ranks 1..N-1 of a ``trainer=ddp`` run) after an error here.

    Lightning kills them on Ctrl-C only; after any other error they would sit in their next
    collective until the timeout, holding their GPUs.
    """
    from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    launcher = getattr(getattr(trainer, "strategy", None), "launcher", None)
    if isinstance(launcher, _SubprocessScriptLauncher) and getattr(launcher, "procs", None):
        launcher.kill(signal.SIGKILL)


def is_collective_failure(err: BaseException) -> bool:
    """A torch.distributed error of a peer that never arrived or went away."""
    if not isinstance(err, RuntimeError) or isinstance(err, CollectiveTimeoutError):
        return False
    text = str(err).lower()
    return any(word in text for word in _HANG_WORDS)


def explain_collective_failure(err: BaseException, trainer, timeout_min: float | None,
                               last_checkpoint: str | None) -> CollectiveTimeoutError:
    """A :class:`CollectiveTimeoutError` naming where this rank waited, the likely causes and the fix."""
    where = _failed_section.pop() if _failed_section else \
        "a Lightning collective (gradient all-reduce, metric reduction or checkpoint barrier)"
    rank = getattr(trainer, "global_rank", "?")
    limit = f"{timeout_min:g} min" if timeout_min is not None else "the process-group timeout"
    resume = (f"resume with ckpt_path={last_checkpoint}" if last_checkpoint
              else "no last.ckpt was written yet (the first epoch did not finish)")
    return CollectiveTimeoutError(
        f"rank {rank} waited longer than {limit} for the other processes in {where} and stopped the run. "
        "Likely causes: another rank crashed or was killed (look for its error above), a rank is stuck "
        "(data loading, a slow file system, a deadlocked callback), or a rank-0-only callback ran a "
        "collective that the other ranks never ran. If one step legitimately takes longer, raise "
        f"trainer.timeout_min. {resume}. (torch.distributed said: {str(err).splitlines()[0][:300]})")
