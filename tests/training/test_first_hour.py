"""A new user's first hour: divergence is an error, progress moves, W&B never prompts, sizes fit
the data, and bad input leaves nothing behind."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rxlit.app.train import train
from rxlit.data import build_datamodule
from rxlit.evaluation.progress import EvalProgress
from rxlit.models import build_model
from rxlit.training.divergence import DivergenceGuard, NonFiniteLossError

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------- divergence
def test_guard_reference_and_running_mean():
    guard = DivergenceGuard(num_classes=10, factor=4.0, warmup_steps=2, momentum=0.5)
    assert guard.reference == pytest.approx(math.log(10))
    assert guard.update(2.0) is None and guard.update(2.2) is None  # start: max(ln 10, 2.1) = 2.3026
    # running mean: 2.0 -> 2.1 -> 0.5*2.1 + 0.5*16 = 9.05 <= 4 * 2.3026 = 9.21: still healthy
    assert guard.update(16.0) is None and guard.running == pytest.approx(9.05)
    reason = guard.update(10.0)  # 0.5 * 9.05 + 0.5 * 10 = 9.525 > 9.21
    assert reason is not None and "9.525" in reason and "4x its starting value 2.303" in reason
    assert "NaN/inf" in DivergenceGuard(10).update(float("nan"))


def test_huge_learning_rate_stops_the_run_with_the_fix(make_cfg, tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"(exploded|NaN/inf).*lower optim.lr \(now 1000\).*recipe"):
        train(make_cfg(["trainer.max_epochs=2", "optim.lr=1000", "trainer.limit_train_batches=8"]))
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["status"] == "failed" and "NonFiniteLossError" in report["error"]
    assert "fit" not in report  # no evaluation numbers of the diverged model


# ------------------------------------------------------------------------------------ progress
def test_progress_reports_every_step_with_an_eta_off_terminal():
    stream = io.StringIO()  # not a TTY: plain lines instead of a bar
    with EvalProgress(5, "xai epoch 0", stream=stream, line_every_s=0.0) as progress:
        for k in range(5):
            time.sleep(0.01)
            progress.advance(f"task{k}")
    assert progress.positions == [0, 1, 2, 3, 4, 5]
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5 and lines[0].startswith("xai epoch 0: 1/5 task0") and "ETA" in lines[0]
    assert lines[-1].startswith("xai epoch 0: 5/5 task4")


def test_evaluation_advances_once_per_method_and_metric():
    import torch

    from rxlit.evaluation import evaluate_subset, parse_spec

    spec = parse_spec({"n_examples": 4, "methods": {"grad": {}, "smoothgrad": {"n_samples": 2}},
                       "metrics": {"local_lipschitz": {"n_samples": 2}, "infidelity": {"n_samples": 4}},
                       "progress": True}, seed=0)
    model = build_model("mlp", num_classes=3, in_chans=1, image_size=4, mean=[0.5], std=[0.25], hidden=[8])
    x, y = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0])
    with EvalProgress(spec.n_tasks(), "xai", stream=io.StringIO()) as progress:
        evaluate_subset(model, x, y, torch.arange(4), spec, epoch=0, progress=progress)
    assert spec.n_tasks() == 4 and progress.positions == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------------------- W&B
def run_train(args, cwd, env_extra=None, timeout=120):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB")}
    env.update(HOME=str(cwd), PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1", **(env_extra or {}))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return proc, time.monotonic() - start


TINY_RUN = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1", "eval_attack.n_examples=8", "eval_attack.steps=1", "explain=none"]


@pytest.mark.slow
def test_online_wandb_without_credentials_fails_fast_or_falls_back(tmp_path):
    out = tmp_path / "out"
    proc, elapsed = run_train([*TINY_RUN, "logger=wandb", "logger.mode=online", f"hydra.run.dir={out}",
                               f"paths.checkpoints={tmp_path / 'ck'}"], tmp_path)
    assert proc.returncode != 0 and elapsed < 60
    assert "logger.mode=online but no W&B credentials" in proc.stderr and "logger.fallback=offline" in proc.stderr
    assert not out.exists() and not (tmp_path / "ck").exists()  # nothing was created
    # asked to fall back, and WANDB_MODE disagreeing with the config: said once, config wins, run offline
    proc, _ = run_train([*TINY_RUN, "logger=wandb", "logger.mode=online", "logger.fallback=offline",
                         f"hydra.run.dir={out}", f"paths.checkpoints={tmp_path / 'ck'}"], tmp_path,
                        env_extra={"WANDB_MODE": "disabled"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "logger.mode=online (config) wins over WANDB_MODE=disabled" in proc.stdout
    assert "logging offline instead" in proc.stdout
    assert len(list((out / "wandb").glob("offline-run-*"))) == 1


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["trainer.max_epochs=0", "optim.name=adamm"])
def test_bad_input_leaves_no_folder_and_no_wandb_run(bad, tmp_path):
    out = tmp_path / "out"
    proc, _ = run_train([*TINY_RUN, bad, "logger=wandb", "logger.mode=offline", f"hydra.run.dir={out}",
                         f"paths.checkpoints={tmp_path / 'ck'}"], tmp_path)
    assert proc.returncode != 0
    assert ("trainer.max_epochs=0 trains nothing" in proc.stderr) or ("unknown optim.name 'adamm'" in proc.stderr)
    assert not out.exists() and not (tmp_path / "ck").exists() and not list(tmp_path.rglob("offline-run-*"))


# -------------------------------------------------------------------------------------- sizes
def write_pngs(root: Path, size: int, per_class: int = 3) -> None:
    for k in range(2):
        folder = root / "train" / f"c{k}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((size, size, 3), 60 * k + i, dtype=np.uint8)).save(folder / f"{i}.png")


def test_imagefolder_takes_its_size_from_the_files(tmp_path):
    write_pngs(tmp_path, 32)
    dm = build_datamodule("imagefolder", root=str(tmp_path), batch_size=4, val_fraction=0.34)
    assert dm.image_size == 32
    model = build_model("small_cnn", num_classes=2, in_chans=3, image_size=dm.image_size, mean=dm.mean, std=dm.std)
    # Madry's CNN at 32x32: conv 3*32*25+32, conv 32*64*25+64, fc 4096*1024+1024, fc 1024*2+2
    assert sum(p.numel() for p in model.parameters()) == 2432 + 51264 + 4195328 + 2050
    with pytest.raises(ValueError, match=r"data.image_size=224 would upsample the 32x32 images .* 7x"):
        build_datamodule("imagefolder", root=str(tmp_path), image_size=224)


def test_small_cnn_does_not_grow_with_the_input():
    def count(side):
        net = build_model("small_cnn", num_classes=10, in_chans=3, image_size=side, mean=[0.5] * 3, std=[0.5] * 3)
        return sum(p.numel() for p in net.parameters())

    assert count(224) == count(32) == count(35)
    assert count(28) == 2432 + 51264 + (3136 * 1024 + 1024) + 10250  # Madry's MNIST layout is kept


def test_exploding_backbone_is_refused_before_training(make_cfg, tmp_path, monkeypatch):
    from rxlit.training import size

    monkeypatch.setattr(size, "LARGE", 100_000)  # the mlp's first layer grows with the input
    with pytest.raises(ValueError, match=r"model=mlp has .*M parameters at 128x128 .* grows with the input size"):
        train(make_cfg(["model=mlp", "data=synthetic", "data.image_size=128"]))
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_timm_run_names_carry_the_architecture(make_cfg):
    assert make_cfg(["model=timm", "model.arch=resnet10t"]).run_name == "digits-timm_resnet10t-none-none-s0"
