"""Evaluate a checkpoint: python scripts/eval.py ckpt_path=checkpoints/<run>/best.ckpt [explain=...] [data=...]"""

import hydra
from omegaconf import DictConfig

from rxlit.callbacks import evaluate_checkpoint


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate_checkpoint(cfg)


if __name__ == "__main__":
    main()
