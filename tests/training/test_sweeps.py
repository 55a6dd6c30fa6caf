"""Hydra sweeps (-m) of DDP runs: each job once, in its own folder, with all its ranks (gloo, CPU)."""

from __future__ import annotations

import pytest
from run_helpers import check, read_json, run_train

from rxlit.analysis.wandb_offline import find_offline_runs, read_offline_run

TINY_DDP = ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "trainer.max_epochs=1",
            "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
            "data.batch_size=32", "eval_attack.n_examples=8", "eval_attack.steps=1", "explain.n_examples=4"]


@pytest.mark.slow
@pytest.mark.ddp
def test_sweep_of_ddp_runs_gives_one_folder_and_one_run_per_job(tmp_path):
    proc = check(run_train(["-m", "seed=0,1", *TINY_DDP], tmp_path, timeout=400))
    names = ["digits-small_cnn-none-none-s0", "digits-small_cnn-none-none-s1"]
    # exactly the two jobs' folders: the second rank of a job did not start the sweep again
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir() if p.is_dir()) == names
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == names
    for seed, name in enumerate(names):
        folder = tmp_path / "outputs" / name
        report = read_json(folder / "metrics.json")
        assert report["status"] == "finished" and report["world_size"] == 2 and report["global_step"] == 2
        assert read_json(folder / "config.json")["seed"] == seed
        runs = find_offline_runs(folder)
        assert len(runs) == 1, runs  # one W&B run per job, written by rank 0 only
        logged = read_offline_run(runs[0], expect={"test/acc"})
        assert logged["config"]["seed"] == seed
    log = proc.stdout + proc.stderr
    # the sweep was launched once (a rank that reran the command line would launch it again) and each
    # job initialised its own two-rank process group
    assert log.count("Launching 2 jobs locally") == 1
    assert log.count("GLOBAL_RANK: 0, MEMBER: 1/2") == log.count("GLOBAL_RANK: 1, MEMBER: 2/2") == 2
