"""Run a reproduction study: python scripts/study.py experiment=free_lunch [data=...] [model=...] [trainer=...]"""

import shutil
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rxlit.analysis.study import run_study, study_run_dir


@hydra.main(version_base="1.3", config_path="../configs", config_name="study")
def main(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    # train.yaml's hydra.run.dir wins over an experiment file's, so the study picks its own folder:
    # outputs/studies/<study>-<data>-<model>/<hydra's timestamp>, with Hydra's .hydra/ copied in.
    run_dir = study_run_dir(cfg, Path(hc.runtime.output_dir).name)
    shutil.copytree(Path(hc.runtime.output_dir) / ".hydra", run_dir / ".hydra", dirs_exist_ok=True)
    run_study(cfg, list(hc.overrides.task), run_dir)


if __name__ == "__main__":
    main()
