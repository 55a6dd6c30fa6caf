"""Two-process DDP (gloo, CPU) with the default callbacks: no hang, and the evaluation equals one process.

Every run here is a subprocess under a wall-clock limit, so a deadlock fails the test instead of
stalling CI (the default rich progress bar once deadlocked DDP at the first evaluation: rank 0
reduced the epoch's metrics for the bar while rank 1 gathered the evaluation's values).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from callback_settings import TINY_EXPLAIN, expected_keys

REPO = Path(__file__).resolve().parents[2]
# Each example's values are computed from the same weights with the same keyed noise on either
# rank; only the batch an example sits in (5 or 4 examples vs 9) changes float rounding in the
# convolutions, so values agree to float32 round-off, far inside this relative tolerance.
DDP_RTOL = 1e-4
TIMING_KEYS = {"xai/time_s", "xai/epoch_time_s", "xai/cost_fraction"}
WALL_LIMIT_S = 420  # a healthy two-rank run below takes well under a minute on 2 cores
# Shrunk sizes, but the parts a user gets by default stay on: evaluation progress, saliency grid, logger.
DDP_EXPLAIN = [arg for arg in TINY_EXPLAIN if arg not in ("explain.progress=false", "explain.every_n_epochs=1")]
# 3 epochs, evaluation every 2: once at a middle epoch (1) and once after the last (2).
# lr = 1e-12: every run keeps the seeded initial weights (to float32 rounding; small_cnn has no
# BatchNorm), so a difference between one and two processes could only come from the evaluation.
COMMON = ["trainer.max_epochs=3", "explain.every_n_epochs=2", "trainer.limit_train_batches=2",
          "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "eval_attack.n_examples=8",
          "eval_attack.steps=1", "optim.lr=1e-12", "data.batch_size=32", *DDP_EXPLAIN, "explain.n_examples=9"]
DDP = ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu"]


def run_train(args, cwd, limit=WALL_LIMIT_S, check=True):
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO / 'tests' / 'training'}",
           "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=limit)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, time.monotonic() - start


def evaluations(out: Path) -> dict[int, dict]:
    return {epoch: json.loads((out / "xai" / f"val_epoch{epoch:03d}.json").read_text())["metrics"]
            for epoch in (1, 2)}


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("single")
    run_train([*COMMON, "logger=csv", f"hydra.run.dir={tmp / 'out'}", f"paths.checkpoints={tmp / 'ck'}"], tmp)
    return tmp / "out"


@pytest.mark.slow
@pytest.mark.ddp
@pytest.mark.parametrize("bar", ["rich", "tqdm", "none"])
def test_ddp_evaluation_finishes_and_equals_single_process(bar, single_process, tmp_path):
    # rich is the default bar and wandb (offline) the default logger: the plainest DDP command
    extra = [] if bar == "rich" else [f"callbacks.progress_bar={bar}", "logger=csv"]
    out = tmp_path / "ddp"
    run_train([*COMMON, *DDP, *extra, f"hydra.run.dir={out}", f"paths.checkpoints={tmp_path / 'ck'}"], tmp_path)
    report = json.loads((out / "metrics.json").read_text())
    assert report["status"] == "finished" and report["epochs"] == 3
    keys = expected_keys() - TIMING_KEYS
    single_report = json.loads((single_process / "metrics.json").read_text())
    for key in sorted(keys):  # the logged values (last evaluation) agree
        assert report["fit"][key] == pytest.approx(single_report["fit"][key], rel=DDP_RTOL, abs=1e-7), key
    single, ddp = evaluations(single_process), evaluations(out)
    for epoch in (1, 2):  # the middle and the last evaluation, means and intervals, every example once
        assert {s["n"] for s in ddp[epoch].values()} == {9}
        for key, summary in single[epoch].items():
            for field in ("mean", "ci_low", "ci_high"):
                assert ddp[epoch][key][field] == pytest.approx(summary[field], rel=DDP_RTOL, abs=1e-7,
                                                               nan_ok=True), (epoch, key, field)
    # only rank 0 wrote files: one JSON and one grid per evaluation, one output folder
    assert sorted(p.name for p in (out / "xai").iterdir()) == [
        "saliency_val_epoch001.png", "saliency_val_epoch002.png", "val_epoch001.json", "val_epoch002.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "ddp"]


@pytest.mark.slow
@pytest.mark.ddp
def test_stalled_rank_ends_with_timeout_error(tmp_path):
    # rank 1 sleeps 300 s after validating epoch 1; rank 0 must give up after trainer.timeout_min
    # (0.5 min), say why, and keep last.ckpt of epoch 0.
    out, ckpt = tmp_path / "ddp", tmp_path / "ck"
    stall = "callbacks.extra=[{_target_: ddp_stall.StallRank, rank: 1, epoch: 1, seconds: 300}]"
    proc, elapsed = run_train([*COMMON, *DDP, "logger=csv", "trainer.timeout_min=0.5", stall,
                               f"hydra.run.dir={out}", f"paths.checkpoints={ckpt}"], tmp_path, limit=280,
                              check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "CollectiveTimeoutError" in text and "waited longer than 0.5 min" in text, text[-3000:]
    assert "the val/adv_acc reduction" in text and "resume with ckpt_path=" in text
    assert elapsed < 200  # the 300 s sleep was not waited out
    report = json.loads((out / "metrics.json").read_text())
    assert report["status"] == "failed" and report["error"].startswith("CollectiveTimeoutError")
    runs = list(ckpt.iterdir())
    assert len(runs) == 1 and (runs[0] / "last.ckpt").exists()
