"""Evaluate a model:
    python scripts/eval.py ckpt_path=checkpoints/<run>/best.ckpt [explain=...] [data=...]      (train.py checkpoints)
    python scripts/eval.py model=<arch> weights=<file> data=<data set> [weights_format=...]    (any other weights)
"""

import os
import sys

import hydra
from omegaconf import DictConfig

from rxlit.app.evaluate import evaluate_checkpoint


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    try:
        evaluate_checkpoint(cfg)
    except (ValueError, FileNotFoundError) as err:  # bad input: the message says what to fix
        if os.environ.get("RXLIT_TRACEBACK"):
            raise
        print(f"error: {err}\n(RXLIT_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
