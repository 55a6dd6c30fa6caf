"""A study's models trained as one Hydra multirun, so the configured launcher runs them in parallel.

``scripts/study.py`` first lists the (model, seed) pairs the study needs (``study.models`` x
``study.seeds``), reuses every one that a finished run already trained (same config hash, whatever
its run name: runs made with ``train.py`` or ``train.py -m`` count), and hands the others to the
Hydra launcher of the study's command line (``hydra/launcher=slurm``, ``joblib``, ... ; Hydra's
default runs them one after another) as one batch of ``train.py`` jobs, exactly the jobs a
``train.py -m`` sweep would launch. The study itself then finds every model trained and evaluates.

Hydra's sweepers only build cartesian products; a study's jobs are a list of different override
sets, so the batch goes to the launcher directly, as a sweeper hands it one.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from omegaconf import DictConfig

from rxlit.app.configs import CONFIGS
from rxlit.app.study import StudyContext, train_command
from rxlit.training.checkpoint import find_diverged_run
from rxlit.training.divergence import NonFiniteLossError


def plan(cfg: DictConfig, overrides: list[str]) -> tuple[list[dict], list[dict]]:
    """(jobs to train, jobs already trained with the run that trained them)."""
    ctx = StudyContext(cfg, overrides, Path("unused"), command="")
    todo, done = [], []
    for job in ctx.jobs():
        info = ctx.finished(job)
        if info is None and find_diverged_run(job["checkpoints"], job["config_hash"], prefer=job["run_name"]):
            print(f"[study] {job['key']}/s{job['seed']}: its training diverged before (run.json); not retrained",
                  flush=True)
            continue
        (todo if info is None else done).append({**job, "reuse": info})
    return todo, done


def launcher_name(hydra_overrides: list[str]) -> str:
    chosen = [o.split("=", 1)[1] for o in hydra_overrides if o.startswith("hydra/launcher=")]
    return chosen[-1] if chosen else "basic (one job after another in this process)"


def print_plan(todo: list[dict], done: list[dict], hydra_overrides: list[str]) -> None:
    for job in done:
        print(f"[study] {job['key']}/s{job['seed']}: reuse {job['reuse']['checkpoint']} (run {job['reuse']['run_name']}, "
              f"config {job['config_hash']})", flush=True)
    if not todo:
        print("[study] every model is trained already", flush=True)
        return
    print(f"[study] {len(todo)} training runs, as one multirun (launcher: {launcher_name(hydra_overrides)}):",
          flush=True)
    for job in todo:
        print(train_command([*job["overrides"], *hydra_overrides]), flush=True)


def diverged(job_return) -> bool:
    """The job's training was stopped by the divergence check (a result, not a failure to retry)."""
    return isinstance(getattr(job_return, "_return_value", None), NonFiniteLossError)


def why(job_return) -> str:
    err = getattr(job_return, "_return_value", None)
    return f"{err.__class__.__name__}: {str(err).strip().splitlines()[0][:300] if str(err).strip() else ''}"


def train_as_multirun(todo: list[dict], hydra_overrides: list[str]) -> None:
    """Launch ``todo`` as one batch of ``train.py`` jobs with the configured Hydra launcher."""
    if not todo:
        return
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_automatic_config_search_path
    from hydra.core.plugins import Plugins
    from hydra.core.utils import JobStatus
    from hydra.types import HydraContext, RunMode

    from rxlit.app.train import train_hydra_job

    try:
        from hydra.core.callbacks import Callbacks
    except ImportError:  # hydra-core < 1.3.2
        from hydra._internal.callbacks import Callbacks

    loader = ConfigLoaderImpl(config_search_path=create_automatic_config_search_path(None, None, str(CONFIGS)))
    config = loader.load_configuration("train", overrides=list(hydra_overrides), run_mode=RunMode.MULTIRUN)
    context = HydraContext(config_loader=loader, callbacks=Callbacks(config))
    launcher = Plugins.instance().instantiate_launcher(hydra_context=context, task_function=train_hydra_job,
                                                       config=config)
    returns = launcher.launch([job["overrides"] for job in todo], initial_job_idx=0)
    failed = [(job, ret) for job, ret in zip(todo, returns) if ret.status != JobStatus.COMPLETED]
    for job, ret in [(job, ret) for job, ret in failed if diverged(ret)]:
        print(f"[study] {job['key']}/s{job['seed']}: training diverged: {why(ret)}\n  the study reports it and "
              "leaves it out of its claims", flush=True)
    failed = [(job, ret) for job, ret in failed if not diverged(ret)]
    if failed:
        lines = "\n".join(f"  {job['key']}/s{job['seed']}: {why(ret)}\n    {shlex.join(job['overrides'])}"
                          for job, ret in failed)
        raise RuntimeError(f"{len(failed)} of {len(todo)} training runs failed (their logs: outputs/<run name>/"
                           f"train.log):\n{lines}")
