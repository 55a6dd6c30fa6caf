"""Run a reproduction study: python scripts/study.py experiment=free_lunch [data=...] [model=...] [trainer=...]"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rxlit.analysis.study import run_study


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    run_study(cfg, list(hc.overrides.task), hc.runtime.output_dir)


if __name__ == "__main__":
    main()
