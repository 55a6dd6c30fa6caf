"""``train(cfg)``: everything ``scripts/train.py`` does, callable from tests and notebooks."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import (
    Callback,
    LearningRateMonitor,
    ModelCheckpoint,
    RichProgressBar,
    TQDMProgressBar,
)
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from rxlit.app.configs import to_dict
from rxlit.app.runlog import EpochLog, log, metric_line, run_log, scalar_metrics
from rxlit.app.summary import print_summary, write_summary
from rxlit.console import quiet_known_noise
from rxlit.data import build_datamodule
from rxlit.distributed import (
    CollectiveTimeoutError,
    ddp_strategy,
    explain_collective_failure,
    is_collective_failure,
    stop_other_ranks,
)
from rxlit.training.attacks import eval_attack_spec
from rxlit.training.batchnorm import sync_batchnorm
from rxlit.training.checkpoint import (
    check_same_model,
    checkpoint_monitor,
    read_checkpoint,
    run_dir_name,
    run_folder,
    write_run_index,
)
from rxlit.training.loggers import RunWandbLogger, WandbRunRecord, build_logger
from rxlit.training.module import RxLitModule
from rxlit.training.optim import build_optimizer, build_scheduler
from rxlit.training.resume import ExactResume
from rxlit.training.size import check_model_size
from rxlit.training.slurm import JobRequeued, check_slurm, requeue_callback, slurm_gpus, slurm_plugins

# hydra.run.dir: outputs/<the run's checkpoint folder name>, one stable folder per run (configs/train.yaml)
OmegaConf.register_new_resolver("rxlit_run_key", run_dir_name, replace=True)
OmegaConf.register_new_resolver("rxlit_slurm_gpus", slurm_gpus, replace=True)  # hydra/launcher=slurm


PROGRESS_BARS = ("rich", "tqdm", "none")


def make_datamodule(data_cfg: dict, seed: int):
    spec = {k: v for k, v in data_cfg.items() if k != "attack"}
    spec.setdefault("seed", seed)
    datamodule = build_datamodule(**spec)
    # its settings reach the logger in the module's run config; Lightning would refuse to merge its
    # hparams with the module's when data.seed differs from seed (studies fix the split: data.seed=0)
    datamodule._log_hyperparams = False
    return datamodule


def data_info(datamodule, name: str) -> dict:
    return {"name": name, "num_classes": int(datamodule.num_classes), "in_chans": int(datamodule.in_chans),
            "image_size": int(datamodule.image_size), "mean": [float(m) for m in datamodule.mean],
            "std": [float(s) for s in datamodule.std]}


def make_module(cfg: dict, datamodule) -> RxLitModule:
    # Fill in the evaluation attack's defaults (norm, eps, step) so config.json records the attack used.
    cfg["eval_attack"] = eval_attack_spec(cfg["eval_attack"], cfg["data"].get("attack"), cfg["adv"]["name"])
    return RxLitModule(model=cfg["model"], data_info=data_info(datamodule, cfg["data"]["name"]),
                       adv=cfg["adv"], reg=cfg["reg"], optim=cfg["optim"], sched=cfg["sched"],
                       eval_attack=cfg["eval_attack"], seed=cfg["seed"],
                       channels_last=cfg.get("channels_last", False), run_config=cfg)


def make_callbacks(cfg: dict, ckpt_dir: Path) -> list[Callback]:
    spec = cfg["callbacks"]
    ckpt = spec["checkpoint"]
    # Two checkpoints: the best by the monitored metric, and last.ckpt written every epoch (Lightning's
    # save_last only writes it when a best checkpoint is written, which would lose the resume point).
    callbacks: list[Callback] = [
        ModelCheckpoint(dirpath=str(ckpt_dir), filename="best", mode=ckpt["mode"],
                        monitor=checkpoint_monitor(ckpt["monitor"], cfg["adv"]["name"], cfg["eval_attack"]["n_examples"]),
                        save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False),
        # written at the very end of each epoch, after the explanation evaluation: the resume point
        ModelCheckpoint(dirpath=str(ckpt_dir), filename="last", monitor=None, save_top_k=1,
                        enable_version_counter=False, save_on_train_epoch_end=True),
        ExactResume(cfg["seed"]),
        EpochLog(),
    ]
    bar = progress_bar(cfg)
    if bar == "rich":
        callbacks.append(RichProgressBar(leave=False))  # finished bars are cleared; the summary stays
    elif bar == "tqdm":  # named explicitly: Lightning's own default is the rich bar when rich is installed
        callbacks.append(TQDMProgressBar(leave=False))
    if spec.get("lr_monitor") and cfg["logger"]["name"] != "none":
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    callbacks.extend(make_extra_callbacks(cfg))
    callbacks.extend(requeue_callback(cfg.get("slurm")))
    callbacks.extend(user_callbacks(spec.get("extra") or []))
    return callbacks


def progress_bar(cfg: dict) -> str:
    """``callbacks.progress_bar``: rich (default), tqdm (Lightning's) or none."""
    name = cfg["callbacks"].get("progress_bar", "rich")
    if name not in PROGRESS_BARS:
        raise ValueError(f"callbacks.progress_bar={name!r} is not one of {', '.join(PROGRESS_BARS)}")
    return "none" if cfg["trainer"].get("enable_progress_bar") is False else name


def user_callbacks(specs: list) -> list[Callback]:
    """``callbacks.extra``: the user's own callbacks, each a ``{_target_: module.Class, arg: value}``."""
    from hydra.utils import instantiate

    made = []
    for spec in specs:
        if not isinstance(spec, dict) or "_target_" not in spec:
            raise ValueError(f"callbacks.extra entries are {{_target_: module.Class, ...}} mappings, got {spec!r}")
        made.append(instantiate(spec))
        if not isinstance(made[-1], Callback):
            raise ValueError(f"callbacks.extra: {spec['_target_']} is not a lightning Callback")
    return made


def make_extra_callbacks(cfg: dict) -> list[Callback]:
    """Callbacks from other config groups (the per-epoch explanation evaluation)."""
    explain = cfg.get("explain") or {}
    if not explain.get("enabled", False):
        return []
    from rxlit.evaluation import build_explain_callback

    return [build_explain_callback(explain, seed=cfg["seed"], attack=cfg["data"].get("attack"))]


def make_trainer(cfg: dict, callbacks: list[Callback], logger) -> L.Trainer:
    spec = dict(cfg["trainer"])
    # Validation runs explanations and attacks that need autograd: inference mode would break them.
    spec["inference_mode"] = False
    # rxlit's key: how long a collective may wait for the other ranks before the run stops with an error
    if progress_bar(cfg) == "none":
        spec["enable_progress_bar"] = False
    spec["strategy"] = ddp_strategy(spec.get("strategy", "auto"), spec.pop("timeout_min", None))
    spec["sync_batchnorm"] = sync_batchnorm(spec)  # 'auto': only on CUDA, where torch supports it
    spec["plugins"] = [*(spec.get("plugins") or []), *slurm_plugins()]
    return L.Trainer(**spec, callbacks=callbacks, logger=logger if logger is not None else False,
                     default_root_dir=cfg["paths"]["output_dir"])


@rank_zero_only
def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))


def log_checkpoints(cfg: dict, logger, best: str, last: Path, report: dict) -> None:
    """best.ckpt and last.ckpt as W&B artifacts (``logger.log_checkpoints``, on by default)."""
    if not isinstance(logger, RunWandbLogger) or not cfg["logger"].get("log_checkpoints", True):
        return
    report["wandb_artifact"] = logger.log_checkpoints(
        {"best": best, "latest": last}, {"run": report["run_name"], "epochs": report["epochs"], **report.get("test", {})})


def finish_wandb(logger) -> None:
    from lightning.pytorch.loggers import WandbLogger

    if isinstance(logger, WandbLogger):
        import wandb

        wandb.finish()


def check_trainer(cfg: dict) -> None:
    epochs = cfg["trainer"].get("max_epochs")
    if epochs is not None and epochs == 0:
        raise ValueError("trainer.max_epochs=0 trains nothing and would report the random initialisation as a "
                         "finished run; set trainer.max_epochs >= 1, or evaluate a checkpoint with "
                         "scripts/eval.py ckpt_path=<checkpoints/<run>/best.ckpt>")


def check_optimisation(cfg: dict) -> None:
    """Optimiser and schedule names and values, checked now rather than when fit() starts."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer([param], **cfg["optim"])
    build_scheduler(optimizer, max(1, cfg["trainer"].get("max_epochs") or 1), **cfg["sched"])


@dataclass
class Prepared:
    """What :func:`prepare` checked and built."""

    datamodule: Any
    module: RxLitModule
    ckpt_dir: Path
    resume_from: Path | None
    callbacks: list[Callback]
    logger: Any


def prepare(cfg: dict, output_dir: Path) -> Prepared:
    """Everything that can fail on bad input: config values and names, data presence, model
    construction and size, the checkpoint to resume, callbacks, logger settings. Nothing here creates
    a folder, a checkpoint or a W&B run; on failure the (empty) Hydra output folder is removed again."""
    try:
        check_trainer(cfg)
        check_slurm(cfg.get("slurm"))
        check_optimisation(cfg)
        datamodule = make_datamodule(cfg["data"], cfg["seed"])
        datamodule.setup()  # reads (or fails to find) the data files now
        module = make_module(cfg, datamodule)
        check_model_size(cfg, module, datamodule)
        ckpt_dir, resume_from = run_folder(cfg["paths"]["checkpoints"], cfg["run_name"], cfg.get("ckpt_path"))
        if resume_from is not None:
            saved = read_checkpoint(resume_from)
            check_same_model(saved["hyper_parameters"].get("run_config"), cfg, resume_from)
        callbacks = make_callbacks(cfg, ckpt_dir)
        logger = build_logger(cfg["logger"], ckpt_dir.name, output_dir, state_dir=ckpt_dir)
        if isinstance(logger, RunWandbLogger):
            callbacks.append(WandbRunRecord(logger))
    except BaseException:
        discard_output_dir(output_dir)
        raise
    return Prepared(datamodule, module, ckpt_dir, resume_from, callbacks, logger)


def discard_output_dir(path: Path) -> None:
    """Remove a run folder that holds only what Hydra wrote at start-up (.hydra/, *.log)."""
    if not path.is_dir() or any(p.name != ".hydra" and p.suffix != ".log" for p in path.iterdir()):
        return
    shutil.rmtree(path, ignore_errors=True)


def train(cfg: DictConfig | dict) -> dict:
    """Train, validate every epoch, test the best checkpoint; write config.json, metrics.json,
    summary.md and the run's log (train.log)."""
    cfg = to_dict(cfg)
    composed = copy.deepcopy(cfg)  # as composed: the run index hashes this (prepare resolves eval_attack in cfg)
    quiet_known_noise()
    start = time.time()
    L.seed_everything(cfg["seed"], workers=True, verbose=False)
    output_dir = Path(cfg["paths"]["output_dir"])
    run = prepare(cfg, output_dir)
    with run_log(output_dir, write=rank_zero_only.rank == 0):
        log_start(cfg, run, output_dir)
        report = fit_and_test(cfg, run, output_dir, start, composed)
    return report


def log_start(cfg: dict, run: Prepared, output_dir: Path) -> None:
    what = f"{cfg['data']['name']} {cfg['model']['name']} adv={cfg['adv']['name']} reg={cfg['reg']['name']} " \
           f"seed={cfg['seed']}, {cfg['trainer'].get('max_epochs')} epochs"
    if run.resume_from is not None:
        log.info("run %s: resuming %s (ckpt_path=%s); %s", run.ckpt_dir.name, run.resume_from, cfg.get("ckpt_path"), what)
    else:
        log.info("run %s: new run in %s; %s", run.ckpt_dir.name, run.ckpt_dir, what)
    log.info("outputs in %s", output_dir)


def fit_and_test(cfg: dict, run: Prepared, output_dir: Path, start: float, composed: dict) -> dict:
    datamodule, module, ckpt_dir, logger = run.datamodule, run.module, run.ckpt_dir, run.logger
    trainer = make_trainer(cfg, run.callbacks, logger)
    write_json(output_dir / "config.json", cfg)
    report = {"run_name": ckpt_dir.name, "checkpoint_dir": str(ckpt_dir), "output_dir": str(output_dir)}
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(run.resume_from) if run.resume_from else None)
        report["fit"] = scalar_metrics(trainer.callback_metrics)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        tested = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        report["test"] = scalar_metrics(tested[0]) if tested else {}
        report.update(status="finished", best_checkpoint=best, epochs=trainer.current_epoch,
                      global_step=trainer.global_step, world_size=trainer.world_size)
        log_checkpoints(cfg, logger, best, ckpt_dir / "last.ckpt", report)
    except JobRequeued as err:  # SLURM runs this command again; it resumes from last.ckpt
        report.update(status="requeued", note=str(err), epochs=trainer.current_epoch, global_step=trainer.global_step)
    except BaseException as err:
        last = ckpt_dir / "last.ckpt"
        if is_collective_failure(err):  # a hang turned into an error by the DDP timeout: say what it means
            err = explain_collective_failure(err, trainer, cfg["trainer"].get("timeout_min"),
                                             str(last) if last.exists() else None)
        report.update(status="failed", error=f"{err.__class__.__name__}: {err}")
        log.error("run %s failed: %s", ckpt_dir.name, report["error"], exc_info=not isinstance(err, CollectiveTimeoutError))
        stop_other_ranks(trainer)
        if isinstance(err, CollectiveTimeoutError):
            raise err from None
        raise
    finally:
        report["last_checkpoint"] = str(ckpt_dir / "last.ckpt") if (ckpt_dir / "last.ckpt").exists() else None
        report["wall_time_s"] = round(time.time() - start, 2)
        write_json(output_dir / "metrics.json", report)
        finish_wandb(logger)
        if trainer.is_global_zero:
            log_end(report)
            write_summary(report, output_dir / "summary.md")
            write_run_index(ckpt_dir, composed, report)
    if trainer.is_global_zero:
        print_summary(report)
    return report


def log_end(report: dict) -> None:
    status = report.get("status", "failed")
    log.info("run %s %s after %.1f s: %s epochs, step %s", report["run_name"], status, report["wall_time_s"],
             report.get("epochs"), report.get("global_step"))
    if report.get("test"):
        log.info("test (best checkpoint %s): %s", report.get("best_checkpoint"), metric_line(report["test"]))
    if report.get("note"):
        log.info("%s", report["note"])


# ----------------------------------------------------------------------------------- Hydra entry
def launches_own_processes(cfg: dict) -> bool:
    """True when Lightning would start this run's other ranks itself (DDP on one machine), as opposed
    to a cluster manager that starts every rank (SLURM's srun, torchrun)."""
    strategy = cfg["trainer"].get("strategy")
    if not isinstance(strategy, str) or not strategy.startswith(("ddp", "fsdp", "deepspeed")):
        return False
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    return not (SLURMEnvironment.detect() or TorchElasticEnvironment.detect() or "LOCAL_RANK" in os.environ)


def train_hydra_job(cfg: DictConfig) -> dict:
    """``scripts/train.py``'s task. In a sweep (``-m``), a DDP job runs in a fresh process of its own:
    Lightning starts the other ranks by rerunning the command line, which in a sweep is the whole
    sweep (and the sweep's first run directory); a single run's command line is just that job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN or not launches_own_processes(to_dict(cfg)):
        return train(cfg)
    return train_job_in_subprocess(list(hc.overrides.task), Path(hc.runtime.output_dir), hc.job.num)


def script_command() -> list[str]:
    """``python scripts/train.py`` (also when the sweep was launched by scripts/study.py)."""
    script = Path(__file__).resolve().parents[3] / "scripts" / "train.py"
    if script.is_file():
        return [sys.executable, str(script)]
    import __main__

    spec = getattr(__main__, "__spec__", None)
    if spec is not None and spec.name:
        return [sys.executable, "-m", spec.name]
    return [sys.executable, str(Path(sys.argv[0]).resolve())]


def train_job_in_subprocess(overrides: list[str], output_dir: Path, job_num: int) -> dict:
    """Run one sweep job as a single run (``hydra.run.dir`` = the job's folder) and return its report."""
    command = [*script_command(), *overrides, f"hydra.run.dir={output_dir}", "hydra.output_subdir=null"]
    print(f"[sweep] job {job_num}: its own process for its DDP ranks, in {output_dir}", flush=True)
    # its own W&B service: one shared with this process would keep a killed job's run id in use
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    code = subprocess.run(command, check=False, env=env).returncode
    metrics = output_dir / "metrics.json"
    report = json.loads(metrics.read_text()) if metrics.is_file() else {}
    if code != 0:
        raise RuntimeError(f"sweep job {job_num} ({' '.join(overrides)}) failed with exit code {code}; "
                           f"its log: {output_dir / 'train.log'}")
    return report
