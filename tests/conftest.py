"""Shared test set-up: quiet offline W&B, two CPU threads, a Hydra config factory."""

from __future__ import annotations

import os

import pytest
import torch
from rxlit_configs import TINY, compose

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_CONSOLE", "off")
torch.set_num_threads(int(os.environ.get("RXLIT_TEST_THREADS", "2")))


@pytest.fixture
def make_cfg(tmp_path):
    """Compose configs/<name>.yaml with outputs and checkpoints inside tmp_path."""

    def factory(overrides: list[str] = (), config_name: str = "train", tiny: bool = True):
        base = TINY if tiny else ["logger=none", "callbacks.progress_bar=tqdm", "callbacks.lr_monitor=false", "explain=none"]
        paths = [f"paths.output_dir={tmp_path / 'out'}", f"paths.checkpoints={tmp_path / 'ckpt'}"]
        return compose(config_name, [*base, *paths, *overrides])

    return factory
