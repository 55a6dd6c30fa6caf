"""W&B offline logging and a real two-process DDP run on CPU (gloo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rxlit.analysis.wandb_offline import find_offline_runs, read_offline_run
from rxlit.app.train import train

REPO = Path(__file__).resolve().parents[2]

# Both runs see the same 2 x 64 = 128 examples per optimiser step and epoch count.
DDP_TOLERANCE = 0.06  # val/acc, absolute: different sample order and BatchNorm statistics per process


def test_wandb_offline_run_holds_logged_metrics(make_cfg, tmp_path):
    report = train(make_cfg(["logger=wandb", "logger.tags=[test]", "trainer.max_epochs=2", "callbacks.lr_monitor=true"]))
    runs = find_offline_runs(tmp_path / "out")
    assert len(runs) == 1
    run = read_offline_run(runs[0], expect={"val/acc", "test/acc"})
    logged = {key for row in run["history"] for key in row}
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "val/adv_acc", "test/acc"} <= logged
    val_acc = [row["val/acc"] for row in run["history"] if "val/acc" in row]
    assert len(val_acc) == 2
    assert val_acc[-1] == pytest.approx(report["fit"]["val/acc"], abs=1e-6)
    assert run["config"]["adv"]["name"] == "none"


def run_script(args, cwd, timeout=420):
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_two_processes_match_single_process(tmp_path):
    # default callbacks (rich bar, explanation evaluation after the last epoch), a light evaluation
    common = ["trainer.max_epochs=4", "eval_attack.n_examples=64", "eval_attack.steps=3",
              "logger=csv", "seed=1", "explain.n_examples=8"]
    single_out, ddp_out = tmp_path / "single", tmp_path / "ddp"
    run_script([*common, "data.batch_size=128", f"hydra.run.dir={single_out}",
                f"paths.checkpoints={tmp_path / 'ck1'}"], cwd=tmp_path)
    run_script([*common, "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "data.batch_size=64",
                f"hydra.run.dir={ddp_out}", f"paths.checkpoints={tmp_path / 'ck2'}"], cwd=tmp_path)
    single = json.loads((single_out / "metrics.json").read_text())
    ddp = json.loads((ddp_out / "metrics.json").read_text())
    assert ddp["status"] == "finished" and ddp["epochs"] == 4
    # one set of logs: a single CSV metrics file, a single output folder, no per-rank copies
    assert len(list(ddp_out.rglob("metrics.csv"))) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck1", "ck2", "ddp", "single"]
    assert abs(ddp["fit"]["val/acc"] - single["fit"]["val/acc"]) <= DDP_TOLERANCE
    assert ddp["fit"]["val/acc"] > 0.8
    # DDP steps: half the batches per process, so the global step count is half of the per-epoch batches
    assert ddp["global_step"] == single["global_step"]
