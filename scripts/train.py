"""Train a model: python scripts/train.py [model=resnet18] [adv=pgd] [trainer=ddp trainer.devices=4] ..."""

import hydra
from omegaconf import DictConfig

from rxlit.app.train import train_hydra_job


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float:
    return train_hydra_job(cfg).get("fit", {}).get("val/acc", 0.0)


if __name__ == "__main__":
    main()
