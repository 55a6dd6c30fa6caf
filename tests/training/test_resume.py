"""Exact resume: a run killed mid-epoch and rerun with ckpt_path=auto ends exactly where an uninterrupted
run does (weights and every logged number), on CPU. Real subprocesses, each under a timeout."""

from __future__ import annotations

import os

import pytest
import torch
from run_helpers import (
    SMALL_RUN,
    callback,
    check,
    final_weights,
    logged_values,
    read_json,
    run_train,
    wandb_artifacts,
    wandb_pieces,
    without_times,
)

from rxlit.app.train import train
from rxlit.training.checkpoint import CheckpointError, read_checkpoint

RUN = "digits-small_cnn-pgd-none-s0"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (shared by the resume and requeue tests)."""
    cwd = tmp_path_factory.mktemp("reference")
    check(run_train(SMALL_RUN, cwd))
    return cwd


def assert_same_run(resumed_cwd, reference_cwd):
    """Same final weights, the same metrics.json numbers and the same per-epoch evaluation files."""
    ref, got = reference_cwd / "outputs" / RUN, resumed_cwd / "outputs" / RUN
    expected, report = read_json(ref / "metrics.json"), read_json(got / "metrics.json")
    assert report["status"] == "finished" and report["epochs"] == expected["epochs"] == 3
    assert report["global_step"] == expected["global_step"] == 12
    assert without_times(report["fit"]) == without_times(expected["fit"])
    assert report["test"] == expected["test"]
    weights = final_weights(resumed_cwd / "checkpoints" / RUN / "last.ckpt")
    reference_weights = final_weights(reference_cwd / "checkpoints" / RUN / "last.ckpt")
    assert weights.keys() == reference_weights.keys()
    for key, value in reference_weights.items():
        assert torch.equal(weights[key], value), key
    for epoch in range(3):  # the explanation evaluation after every epoch, keyed noise and all
        name = f"xai/val_epoch{epoch:03d}.json"
        ours, theirs = read_json(got / name), read_json(ref / name)
        assert {k: v for k, v in ours.items() if "time" not in k} == {k: v for k, v in theirs.items() if "time" not in k}
    assert_same_wandb_history(got, ref)


def assert_same_wandb_history(got, ref):
    """The pieces of the resumed run form one W&B run whose logged values are the reference's, once each."""
    pieces, (reference,) = wandb_pieces(got), wandb_pieces(ref)
    assert len(pieces) == 2 and pieces[0][0] == pieces[1][0]  # one W&B run id, continued
    assert read_json(got.parents[1] / "checkpoints" / RUN / "wandb.json")["id"] == pieces[0][0]
    steps = [row["_step"] for _, run in pieces for row in run["history"]]
    assert steps == sorted(set(steps))  # W&B's steps keep increasing across the pieces: they sync as one
    values = logged_values([run["history"] for _, run in pieces])
    assert values == logged_values([reference[1]["history"]])
    assert all(len(v) == 1 for v in values.values())  # nothing logged twice


@pytest.mark.slow
def test_sigkill_mid_epoch_then_auto_resume_is_exact(reference, tmp_path):
    killed = run_train([*SMALL_RUN, callback("KillAt", step=6, after_s=3)], tmp_path)  # epoch 1, third batch
    assert killed.returncode == -9, killed.stderr[-2000:]
    saved = read_checkpoint(tmp_path / "checkpoints" / RUN / "last.ckpt")
    assert saved["epoch"] == 0 and saved["global_step"] == 4  # the resume point: the end of epoch 0
    assert {"torch", "numpy", "python"} <= set(saved["rng_states"])
    check(run_train([*SMALL_RUN, "ckpt_path=auto"], tmp_path))
    assert_same_run(tmp_path, reference)
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == [RUN]  # one folder, shared
    log = (tmp_path / "outputs" / RUN / "train.log").read_text()  # both attempts, in order
    assert log.index(f"run {RUN}: new run") < log.index("epoch 0 (1 of 3)") < log.index(f"run {RUN}: resuming")
    assert f"checkpoints/{RUN}/last.ckpt (ckpt_path=auto)" in log and f"run {RUN} finished" in log


@pytest.mark.slow
def test_wandb_summaries_follow_each_metric_direction_and_checkpoints_are_artifacts(reference):
    ((run_id, run),) = wandb_pieces(reference / "outputs" / RUN)
    history, summary = run["history"], run["summary"]

    def series(key):
        return [row[key] for row in history if key in row]

    for key, best in (("val/acc", max), ("val/adv_acc", max), ("train/loss", min), ("val/loss", min),
                      ("xai/local_lipschitz/grad", min), ("xai/infidelity/grad", min),
                      ("xai/tan_faithfulness/grad", max)):
        values = series(key)
        assert len(values) == 3, key  # one per epoch
        assert summary[key] == {best.__name__: best(values), "last": values[-1]}, key
    folder = next((reference / "outputs" / RUN / "wandb").glob("offline-run-*"))
    assert sorted(wandb_artifacts(folder)) == [(f"model-{run_id}", ["best", "latest"], ["best.ckpt"]),
                                               (f"model-{run_id}", ["latest"], ["last.ckpt"])]
    assert read_json(reference / "outputs" / RUN / "metrics.json")["wandb_artifact"] == f"model-{run_id}"


@pytest.mark.slow
def test_run_folder_has_the_log_and_the_summary(reference):
    folder = reference / "outputs" / RUN
    report = read_json(folder / "metrics.json")
    log = (folder / "train.log").read_text()
    for epoch in range(3):
        assert f"epoch {epoch} ({epoch + 1} of 3): " in log
    assert "GPU available: False" in log  # Lightning's own messages reach the file too
    assert f"test/acc {report['test']['test/acc']:.4g}" in log and f"run {RUN} finished" in log
    summary = (folder / "summary.md").read_text()
    assert summary.startswith(f"# rxlit run {RUN}") and "status: finished, 3 epochs, step 12" in summary
    assert f"| val/acc | {report['fit']['val/acc']:.4f} |" in summary
    assert "| method | bound_ratio | infidelity | local_lipschitz | tan_faithfulness |" in summary


def test_run_started_from_python_writes_its_log_too(make_cfg, tmp_path):
    report = train(make_cfg(["trainer.max_epochs=2"]))
    log = (tmp_path / "out" / "train.log").read_text()
    assert "epoch 1 (2 of 2): " in log and f"test/loss {report['test']['test/loss']:.4g}" in log
    assert "status: finished, 2 epochs" in (tmp_path / "out" / "summary.md").read_text()


def test_not_a_checkpoint_is_a_checkpoint_error(make_cfg, tmp_path):
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    for path, words in (("/etc/passwd", "not a torch checkpoint"), (empty, "empty file"), (tmp_path, "is a folder")):
        with pytest.raises(CheckpointError, match=words):
            train(make_cfg([f"ckpt_path={path}"]))
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_resume_with_another_model_config_names_the_keys(make_cfg, tmp_path):
    first = train(make_cfg([]))
    with pytest.raises(CheckpointError, match=r"optim\.lr: 0\.05 in the checkpoint, 0\.2 now; seed: 0 in the "
                                              r"checkpoint, 1 now.*ckpt_path=new"):
        train(make_cfg(["optim.lr=0.2", "seed=1", f"ckpt_path={first['last_checkpoint']}"]))
    # epochs, logging, evaluation and data location may change on resume
    resumed = train(make_cfg(["trainer.max_epochs=2", "data.root=elsewhere", "ckpt_path=auto"]))
    assert resumed["checkpoint_dir"] == first["checkpoint_dir"] and resumed["epochs"] == 2


# What sbatch sets in a one-task batch job (Lightning detects SLURM from these), and an scontrol that
# records what it was asked instead of talking to a cluster.
SLURM_ENV = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "rxlit", "SLURM_NTASKS": "1", "SLURM_PROCID": "0",
             "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost"}


def fake_slurm(folder) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    scontrol = folder / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {folder / "scontrol.log"}\n')
    scontrol.chmod(0o755)
    return {**SLURM_ENV, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.slow
def test_slurm_signal_requeues_and_the_requeued_job_resumes_exactly(reference, tmp_path):
    env = fake_slurm(tmp_path / "bin")
    # SLURM's pre-timeout signal in the middle of epoch 1: the run finishes that epoch, requeues, stops
    first = check(run_train([*SMALL_RUN, callback("SignalAt", step=6)], tmp_path, env))
    assert (tmp_path / "bin" / "scontrol.log").read_text().split() == ["requeue", "4242"]
    report = read_json(tmp_path / "outputs" / RUN / "metrics.json")
    assert report["status"] == "requeued" and report["global_step"] == 8, first.stdout[-2000:]
    assert read_checkpoint(tmp_path / "checkpoints" / RUN / "last.ckpt")["epoch"] == 1
    # SLURM starts the same command again: ckpt_path is auto in a SLURM job
    check(run_train(SMALL_RUN, tmp_path, {**env, "SLURM_RESTART_COUNT": "1"}))
    assert_same_run(tmp_path, reference)
    assert (tmp_path / "bin" / "scontrol.log").read_text().count("requeue") == 1


def test_slurm_grace_ran_out_requeues_mid_epoch(make_cfg, tmp_path, monkeypatch):
    for key, value in fake_slurm(tmp_path / "bin").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    report = train(make_cfg(["trainer.max_epochs=3", "trainer.limit_train_batches=4", "slurm.grace_s=0.5",
                             callback("SignalAt", step=5, wait_s=2)]))
    # the grace period ends during step 5: requeued (the array task), stopped after the step in flight
    assert (tmp_path / "bin" / "scontrol.log").read_text().split() == ["requeue", "77_3"]
    assert report["status"] == "requeued" and report["global_step"] == 6
    assert report["checkpoint_dir"].endswith("digits-small_cnn-none-none-s0_a3")
    assert read_checkpoint(report["last_checkpoint"])["epoch"] == 0  # the requeued job repeats epoch 1
