"""Run a reproduction study: python scripts/study.py experiment=free_lunch [data=...] [model=...] [trainer=...]
[hydra/launcher=slurm ...] [--dry-run]

The models the study needs are trained first, as one Hydra multirun with the launcher of this
command line (reusing every model a finished run already trained), then the study evaluates them.
--dry-run prints the training commands (and the runs it would reuse) and trains nothing.
"""

import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rxlit.app.fanout import plan, print_plan, train_as_multirun
from rxlit.app.study import run_study, study_run_dir
from rxlit.app.train import discard_output_dir

DRY_RUN = "--dry-run" in sys.argv
if DRY_RUN:
    sys.argv.remove("--dry-run")


@hydra.main(version_base="1.3", config_path="../configs", config_name="study")
def main(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    launcher = [o for o in hc.overrides.hydra if o.startswith(("hydra/launcher=", "hydra.launcher."))]
    todo, done = plan(cfg, overrides)
    print_plan(todo, done, launcher)
    if DRY_RUN:
        discard_output_dir(Path(hc.runtime.output_dir))
        return
    study_hydra = HydraConfig.instance().cfg
    train_as_multirun(todo, launcher)
    HydraConfig.instance().set_config(study_hydra)  # the launcher ran the jobs with their own
    # train.yaml's hydra.run.dir wins over an experiment file's, so the study picks its own folder:
    # outputs/studies/<study>-<data>-<model>/<hydra's timestamp>, with Hydra's .hydra/ copied in.
    run_dir = study_run_dir(cfg, Path(hc.runtime.output_dir).name)
    shutil.copytree(Path(hc.runtime.output_dir) / ".hydra", run_dir / ".hydra", dirs_exist_ok=True)
    run_study(cfg, overrides, run_dir)


if __name__ == "__main__":
    main()
