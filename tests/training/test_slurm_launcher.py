"""configs/hydra/launcher/slurm.yaml, read by submitit itself: the sbatch script it would submit."""

from __future__ import annotations

import os

import pytest
from omegaconf import OmegaConf
from rxlit_configs import CONFIGS

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


def sbatch_script(overrides: list[str], tmp_path, monkeypatch) -> str:
    """Compose train.yaml with hydra/launcher=slurm and let submitit write the job's sbatch script,
    mapping the launcher's keys to submitit as the launcher does (a fake srun: no cluster here)."""
    import submitit
    from hydra import compose, initialize_config_dir
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    import rxlit.app.train  # noqa: F401  (registers the resolvers the config uses)

    srun = tmp_path / "srun"
    srun.write_text("#!/bin/sh\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm", *overrides], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert params.pop("_target_").endswith("SlurmLauncher")
    executor = submitit.AutoExecutor(cluster="slurm", folder=str(tmp_path / "jobs"),
                                     slurm_max_num_timeout=params.pop("max_num_timeout"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    params.pop("submitit_folder")
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    return executor._executor._make_submission_file_text("python scripts/train.py", "uid")


def test_ddp_job_gets_one_task_and_gpu_per_device_and_the_requeue_signal(tmp_path, monkeypatch):
    script = sbatch_script(["trainer=ddp", "trainer.devices=4", "hydra.launcher.partition=gpu"], tmp_path, monkeypatch)
    for line in ("--ntasks-per-node=4", "--gpus-per-node=4", "--nodes=1", "--partition=gpu",
                 "--signal=USR2@180", "--time=240", "--cpus-per-task=4"):
        assert f"#SBATCH {line}\n" in script, line
    assert "srun" in script and "export SUBMITIT_EXECUTOR=slurm" in script


def test_cpu_job_asks_for_no_gpu(tmp_path, monkeypatch):
    script = sbatch_script(["hydra.launcher.timeout_min=30"], tmp_path, monkeypatch)
    assert "--gpus-per-node" not in script
    assert "#SBATCH --ntasks-per-node=1\n" in script and "#SBATCH --time=30\n" in script
