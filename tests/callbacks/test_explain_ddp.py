"""Two-process DDP (gloo, CPU) evaluation equals the single-process evaluation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from callback_settings import TINY_EXPLAIN, expected_keys

REPO = Path(__file__).resolve().parents[2]
# Each example's values are computed from the same weights with the same keyed noise on either
# rank; only the batch an example sits in (5 or 4 examples vs 9) changes float rounding in the
# convolutions, so values agree to float32 round-off, far inside this relative tolerance.
DDP_RTOL = 1e-4
TIMING_KEYS = {"xai/time_s", "xai/epoch_time_s", "xai/cost_fraction"}


def run_train(args, cwd):
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_evaluation_equals_single_process(tmp_path):
    # lr = 1e-12: both runs keep the seeded initial weights (to float32 rounding) (no BatchNorm in small_cnn), so any
    # difference would come from the evaluation itself. 9 examples: uneven shards (5 + 4).
    common = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
              "trainer.limit_test_batches=1", "eval_attack.n_examples=8", "eval_attack.steps=1", "optim.lr=1e-12",
              "logger=csv", "callbacks.progress_bar=tqdm", "data.batch_size=32", *TINY_EXPLAIN,
              "explain.n_examples=9"]
    single_out, ddp_out = tmp_path / "single", tmp_path / "ddp"
    run_train([*common, f"hydra.run.dir={single_out}", f"paths.checkpoints={tmp_path / 'ck1'}"], tmp_path)
    run_train([*common, "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu",
               f"hydra.run.dir={ddp_out}", f"paths.checkpoints={tmp_path / 'ck2'}"], tmp_path)
    single = json.loads((single_out / "metrics.json").read_text())["fit"]
    ddp = json.loads((ddp_out / "metrics.json").read_text())["fit"]
    keys = expected_keys() - TIMING_KEYS
    assert keys <= set(single) and keys <= set(ddp)
    for key in sorted(keys):
        assert ddp[key] == pytest.approx(single[key], rel=DDP_RTOL, abs=1e-7), key
    # the gathered aggregate covers all 9 examples once; only rank 0 wrote files
    saved = json.loads((ddp_out / "xai" / "val_epoch000.json").read_text())
    assert {s["n"] for s in saved["metrics"].values()} == {9}
    assert sorted(p.name for p in (ddp_out / "xai").iterdir()) == ["saliency_val_epoch000.png", "val_epoch000.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck1", "ck2", "ddp", "single"]
    singles = json.loads((single_out / "xai" / "val_epoch000.json").read_text())["metrics"]
    for key, summary in singles.items():  # the confidence intervals agree too
        for field in ("ci_low", "ci_high"):
            assert saved["metrics"][key][field] == pytest.approx(summary[field], rel=DDP_RTOL, abs=1e-7, nan_ok=True), key
