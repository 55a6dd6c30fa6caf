"""A BatchNorm backbone under CPU DDP (gloo): it trains, and so does the double-backprop penalty
(on the training batch's statistics held fixed; SyncBatchNorm is used only on CUDA). Gradient
clipping as docs/training.md advises for gradnorm on BatchNorm backbones."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY_RESNET = ["model=resnet18", "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "trainer.max_epochs=1",
               "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
               "data.batch_size=16", "eval_attack.n_examples=8", "eval_attack.steps=1", "explain=none", "logger=csv",
               "callbacks.progress_bar=tqdm"]


@pytest.mark.slow
@pytest.mark.ddp
def test_resnet18_with_gradnorm_trains_under_cpu_ddp(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *TINY_RESNET, "reg=gradnorm",
                           "trainer.gradient_clip_val=1.0", f"hydra.run.dir={out}", f"paths.checkpoints={tmp_path / 'ckpt'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "metrics.json").read_text())
    assert report["status"] == "finished" and report["global_step"] == 2
    for key in ("train/loss", "train/penalty", "val/acc", "val/adv_acc"):
        assert math.isfinite(report["fit"][key]), key
    assert report["fit"]["train/penalty"] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["trainer"]["sync_batchnorm"] == "auto"  # resolved to false on CPU, where SyncBatchNorm cannot run
