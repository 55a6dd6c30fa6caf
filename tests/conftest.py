"""Shared test set-up: quiet offline W&B, two CPU threads, a Hydra config factory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_CONSOLE", "off")
torch.set_num_threads(int(os.environ.get("RXLIT_TEST_THREADS", "2")))

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

# A training run small enough for a unit test: 2 batches of digits, tiny evaluation attack.
TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "eval_attack.n_examples=16",
    "eval_attack.steps=2",
    "data.batch_size=32",
    "logger=none",
    "callbacks.progress_bar=tqdm",
    "callbacks.lr_monitor=false",
    "explain=none",
]


def compose(config_name: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides)


@pytest.fixture
def make_cfg(tmp_path):
    """Compose configs/<name>.yaml with outputs and checkpoints inside tmp_path."""

    def factory(overrides: list[str] = (), config_name: str = "train", tiny: bool = True):
        base = TINY if tiny else ["logger=none", "callbacks.progress_bar=tqdm", "callbacks.lr_monitor=false", "explain=none"]
        paths = [f"paths.output_dir={tmp_path / 'out'}", f"paths.checkpoints={tmp_path / 'ckpt'}"]
        return compose(config_name, [*base, *paths, *overrides])

    return factory
