"""Every experiment= config composes and resolves, as it is and with debug=study; debug=study keeps
the protocol (several seeds) and trains every model as debug=tiny."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf
from rxlit_configs import CONFIGS, compose

from rxlit.app.study import StudyContext, study_settings

EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))
DEBUG = sorted(p.stem for p in (CONFIGS / "debug").glob("*.yaml"))


def resolved(config_name: str, overrides: list[str], tmp_path: Path) -> dict:
    cfg = compose(config_name, [*overrides, f"paths.output_dir={tmp_path}"])
    return OmegaConf.to_container(cfg, resolve=True)


def test_the_configs_are_there():
    assert EXPERIMENTS == ["free_lunch", "infidelity_table", "sg_clime_convergence", "smoothing_tradeoff"]
    assert {"tiny", "study"} <= set(DEBUG)
    # a study's own debug settings belong to an experiment (none left behind by a rename)
    for path in (CONFIGS / "debug" / "studies").glob("*.yaml"):
        debug, _, experiment = path.stem.partition("_")
        assert debug in DEBUG and experiment in EXPERIMENTS, path.name


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("debug", [[], ["debug=study"]])
def test_experiment_composes_and_resolves(experiment, debug, tmp_path):
    for config_name in ("train", "study"):  # scripts/study.py composes study.yaml, its runs train.yaml
        cfg = resolved(config_name, [f"experiment={experiment}", *debug], tmp_path)
        assert cfg["study"]["name"] == experiment
        assert "use_tiny" not in cfg["study"] and "tiny" not in cfg["study"]  # no test settings in production


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_debug_study_keeps_the_protocol_and_trains_tiny_models(experiment, tmp_path):
    overrides = [f"experiment={experiment}", "logger=none", f"paths.checkpoints={tmp_path / 'ckpt'}"]
    full = StudyContext(compose("train", overrides), overrides, tmp_path, "test")
    debug = StudyContext(compose("train", [*overrides, "debug=study"]), [*overrides, "debug=study"], tmp_path, "test")
    assert len(debug.seeds) >= 2 and set(debug.seeds) <= set(full.seeds)
    assert 0 < debug.study["n_examples"] < full.study["n_examples"]
    assert set(debug.study["models"]) <= set(full.study["models"])
    for job in debug.jobs():
        assert job["config"]["trainer"]["max_epochs"] == 1 and job["config"]["trainer"]["limit_train_batches"] == 2
    standard = full.job(next(iter(full.study["models"])), full.seeds[0])  # the full study trains for real
    assert standard["config"]["trainer"]["max_epochs"] == 15


def test_null_removes_a_study_entry():
    cfg = compose("train", ["experiment=free_lunch", "study.models.spectral=null", "study.methods.lime=null"])
    s = study_settings(cfg)
    assert "spectral" not in s["models"] and "lime" not in s["methods"] and "grad" in s["methods"]


def test_debug_tiny_shrinks_a_training_run(tmp_path):
    cfg = resolved("train", ["debug=tiny"], tmp_path)
    assert cfg["trainer"]["max_epochs"] == 1 and cfg["trainer"]["limit_train_batches"] == 2
    assert cfg["eval_attack"]["n_examples"] == 16 and cfg["explain"]["n_examples"] == 8
    command_line = resolved("train", ["debug=tiny", "trainer.max_epochs=3", "eval_attack.n_examples=4"], tmp_path)
    assert command_line["trainer"]["max_epochs"] == 3 and command_line["eval_attack"]["n_examples"] == 4
