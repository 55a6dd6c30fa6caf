"""The run's log file, ``<run folder>/train.log``: what happened, in words a person reads.

Under Hydra the file is Hydra's job log (``<job name>.log``, its handler on the root logger); a run
started from Python gets a file handler of its own for the duration of the run. Lightning's loggers
do not propagate to the root logger (Lightning gives them a console handler of their own), so the
file handlers are added to them too, and Python warnings are routed through logging while the run
lasts. rxlit logs the start (new run or resume, and from where), every epoch's metrics, SLURM
requeues, the end (status, best checkpoint, test metrics) and a failure's traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback

from rxlit.evaluation.keys import is_evaluation_key

LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")
FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's job log format

log = logging.getLogger("rxlit.app.train")


@contextmanager
def run_log(output_dir: Path, write: bool = True) -> Iterator[None]:
    """Send the run's Python logging (rxlit's, Lightning's, warnings) to ``output_dir/train.log``."""
    root = logging.getLogger()
    folder = Path(output_dir).resolve()
    files = [h for h in root.handlers  # Hydra's job log lives in the run folder
             if isinstance(h, logging.FileHandler) and Path(h.baseFilename).parent == folder]
    own = None
    if not files and write:  # not under Hydra: a handler of our own for this run
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        own = logging.FileHandler(Path(output_dir) / "train.log")
        own.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(own)
        files = [own]
    rxlit = logging.getLogger("rxlit")
    level = rxlit.level
    rxlit.setLevel(logging.INFO)
    added = []
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if not logger.propagate:
            for handler in files:
                if handler not in logger.handlers:
                    logger.addHandler(handler)
                    added.append((logger, handler))
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        for logger, handler in added:
            logger.removeHandler(handler)
        rxlit.setLevel(level)
        if own is not None:
            root.removeHandler(own)
            own.close()


def metric_line(metrics: dict[str, float]) -> str:
    """The training numbers of a run (the explanation evaluation's keys are left out)."""
    return ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()) if not is_evaluation_key(k))


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if "/" not in key:  # progress-bar-only values
            continue
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            out[key] = float(value)
        elif isinstance(value, int | float):
            out[key] = float(value)
    return dict(sorted(out.items()))



class EpochLog(Callback):
    """One line per finished epoch in the run's log: its training, validation and evaluation numbers
    (the explanation matrix itself is in ``xai/<split>_epochNNN.json`` and the summary)."""

    def __init__(self):
        self._pending: int | None = None

    def _write(self, trainer) -> None:
        if self._pending is None or not trainer.is_global_zero:
            return
        metrics = scalar_metrics(trainer.callback_metrics)
        n_xai = sum(map(is_evaluation_key, metrics))
        extra = f" (+{n_xai} explanation values)" if n_xai else ""
        log.info("epoch %d (%d of %s): %s%s", self._pending, self._pending + 1, trainer.max_epochs,
                 metric_line(metrics), extra)
        self._pending = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._pending = trainer.current_epoch  # written once Lightning has reduced the epoch's metrics

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._write(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._write(trainer)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._write(trainer)
