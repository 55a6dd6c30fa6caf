"""``ExplanationEvaluation``: the per-epoch explanation evaluation as a Lightning callback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from rxlit.distributed import collective_section
from rxlit.evaluation import keys
from rxlit.evaluation.engine import EvalResult, evaluate_subset
from rxlit.evaluation.keys import split_key
from rxlit.evaluation.progress import EvalProgress
from rxlit.evaluation.saliency import pick_maps, saliency_grid, saliency_maps, save_png
from rxlit.evaluation.spec import EvalSpec
from rxlit.explain.passes import eval_mode

TABLE_COLUMNS = ["epoch", "split", "method", "metric", "mean", "ci_low", "ci_high", "n"]


class ExplanationEvaluation(Callback):
    """Methods x metrics on a fixed stratified subset, every ``every_n_epochs`` and at the end of fit.

    Logs ``xai/<metric>/<method>``, ``model/<metric>``, ``xai/bound_ratio/<method>``, ``xai/time_s``
    (wall time of this evaluation, slowest rank), ``xai/epoch_time_s`` (the training epoch it
    followed) and ``xai/cost_fraction`` (evaluation time so far over training-epoch time so far).
    Rank 0 also logs a W&B table and a saliency grid (``xai/saliency``) when the logger is a
    WandbLogger, and writes ``xai/<split>_epoch<NNN>.json`` and ``.png`` under ``output_dir``
    (default: the trainer's ``default_root_dir``).

    ``scripts/eval.py`` runs the same :func:`evaluate_subset` on a checkpoint, outside Lightning
    (:mod:`rxlit.app.evaluate`).
    """

    def __init__(self, spec: EvalSpec, output_dir: str | Path | None = None, attack: dict | None = None):
        self.spec = spec
        self.attack = dict(attack) if attack else None  # robust_accuracy budget; None: datamodule.attack
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.results: list[EvalResult] = []
        self.table_rows: list[list] = []
        self.train_time = 0.0
        self.xai_time = 0.0
        self._epoch_start: float | None = None
        self._epoch_cpu_start = 0.0
        self._epoch_cpu = None

    # ------------------------------------------------------------------------------ Lightning hooks
    def state_dict(self) -> dict:
        """Saved in checkpoints, so a resumed run keeps its cost accounting and W&B table."""
        return {"train_time": self.train_time, "xai_time": self.xai_time, "table_rows": self.table_rows}

    def load_state_dict(self, state_dict: dict) -> None:
        self.train_time = float(state_dict.get("train_time", 0.0))
        self.xai_time = float(state_dict.get("xai_time", 0.0))
        self.table_rows = [list(row) for row in state_dict.get("table_rows", [])]

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "eval_subset"):
            raise ValueError("the explanation evaluation needs an rxlit data module (one with eval_subset); "
                             "pass datamodule=build_datamodule(...) to the trainer, or set explain=none")

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        self._epoch_cpu_start = time.process_time()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch_time = time.perf_counter() - self._epoch_start if self._epoch_start is not None else 0.0
        # CPU time of this process too (JSON only): on a shared machine it is a steadier cost measure
        self._epoch_cpu = time.process_time() - self._epoch_cpu_start
        self.train_time += epoch_time
        if not self.should_run(trainer):
            return
        # every rank runs the evaluation's gathers with no metric reduction pending around them, so a
        # rank-0-only hook (the progress bar) cannot put rank 0 in a different collective
        with collective_section(trainer, f"the explanation evaluation of epoch {trainer.current_epoch}"):
            self.run(trainer, pl_module, trainer.current_epoch, epoch_time=epoch_time)

    def should_run(self, trainer: Trainer) -> bool:
        """Every ``every_n_epochs`` epochs, and on the last epoch of fit (max_epochs, max_steps or a
        requested stop)."""
        epoch = trainer.current_epoch
        if (epoch + 1) % self.spec.every_n_epochs == 0:
            return True
        last_epoch = trainer.max_epochs is not None and 0 < trainer.max_epochs <= epoch + 1
        last_step = trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step
        return last_epoch or last_step or trainer.should_stop

    # ----------------------------------------------------------------------------------- the work
    def run(self, trainer: Trainer, pl_module: LightningModule, epoch: int,
            epoch_time: float | None = None) -> EvalResult:
        """Evaluate on this rank's shard, aggregate, draw the saliency grid (rank 0), then write
        rank-0 outputs and log. ``xai/time_s`` covers the evaluation and the grid, slowest rank."""
        spec, datamodule = self.spec, trainer.datamodule
        start, cpu_start = time.perf_counter(), time.process_time()
        x, y, index = datamodule.eval_subset(spec.n_examples, split=spec.split)
        model = getattr(pl_module, "model", pl_module)  # the network, not the DDP wrapper
        show = spec.progress and trainer.is_global_zero
        explanations = {}
        with EvalProgress(spec.n_tasks(), f"xai epoch {epoch}", enabled=show, trainer=trainer) as progress:
            result = evaluate_subset(model, x, y, index, spec, epoch, trainer.global_rank, trainer.world_size,
                                     attack=self.attack or getattr(datamodule, "attack", None), progress=progress,
                                     explanations=explanations)
        # one process holds every example's explanations; under DDP rank 0 explains its grid rows
        reuse = explanations if trainer.world_size == 1 else None
        names = getattr(datamodule, "class_names", None)
        grid = self.draw(model, (x, y, index), result, reuse, names) if trainer.is_global_zero else None
        elapsed = torch.tensor(time.perf_counter() - start, dtype=torch.float64, device=pl_module.device)
        result.time_s = float(trainer.strategy.reduce(elapsed, reduce_op="max"))
        result.epoch_time_s = epoch_time
        result.cpu_time_s = time.process_time() - cpu_start
        result.epoch_cpu_time_s = self._epoch_cpu if epoch_time is not None else None
        self.xai_time += result.time_s
        self.results.append(result)
        if trainer.is_global_zero:
            self.write_outputs(trainer, grid, result)
        scalars = result.scalars()
        if epoch_time is not None:
            scalars[keys.EPOCH_TIME] = epoch_time
        if self.train_time > 0:
            scalars[keys.COST_FRACTION] = self.xai_time / self.train_time
        for key, value in scalars.items():
            # Equal on every rank already; sync_dist averages equal numbers (exact), quietly.
            pl_module.log(key, float(value), on_step=False, on_epoch=True, sync_dist=True)
        return result

    def draw(self, model, subset, result: EvalResult, explanations: dict | None = None, class_names=None):
        """The saliency grid (uint8 image) of ``n_saliency_examples`` examples (None when disabled)."""
        if self.spec.n_saliency_examples <= 0 or not self.spec.methods:
            return None
        if explanations:
            x_maps, y_maps, maps = pick_maps(subset[0], subset[1], explanations, self.spec.n_saliency_examples)
        else:
            x_maps, y_maps, maps = saliency_maps(model, *subset, self.spec, result.epoch)
        with torch.no_grad(), eval_mode(model):  # eval mode: BatchNorm statistics stay as trained
            pred = model(x_maps).argmax(1)
        return saliency_grid(x_maps, y_maps, maps, title=f"epoch {result.epoch} ({result.split})", pred=pred,
                             class_names=class_names)

    def write_outputs(self, trainer: Trainer, grid, result: EvalResult) -> None:
        """Rank 0: per-epoch JSON and saliency PNG on disk; W&B table and image."""
        self.table_rows += table_rows(result)
        folder = self.output_dir or Path(trainer.default_root_dir)
        stem = f"{result.split}_epoch{result.epoch:03d}"
        if self.spec.save_files:
            (folder / "xai").mkdir(parents=True, exist_ok=True)
            (folder / "xai" / f"{stem}.json").write_text(json.dumps(result.as_dict(), indent=2, default=float))
            if grid is not None:
                save_png(grid, folder / "xai" / f"saliency_{stem}.png")
        log_media(trainer.loggers, grid, self.table_rows, result, step=trainer.global_step)


def table_rows(result: EvalResult) -> list[list]:
    """One row per (method, metric) of a result (method "-" for model metrics)."""
    rows = []
    for key, s in result.summaries.items():
        parts = split_key(key)
        metric, method = (parts[1], parts[2] or "-") if parts else (keys.metric_of(key), "-")
        rows.append([result.epoch, result.split, method, metric, s["mean"], s["ci_low"], s["ci_high"], s["n"]])
    return rows


def log_media(loggers, grid, rows: list[list], result: EvalResult, step: int | None = None) -> None:
    """The saliency grid (``xai/saliency``) and the cumulative results table (``xai/table``), for
    every W&B logger among ``loggers``; other loggers take scalars only."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        if grid is not None:
            logger.log_image(key=keys.SALIENCY, images=[grid],
                             caption=[f"epoch {result.epoch} ({result.split})"], step=step)
        logger.log_table(key=keys.TABLE, columns=TABLE_COLUMNS, data=[list(r) for r in rows], step=step)
