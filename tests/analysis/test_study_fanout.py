"""scripts/study.py trains the models a study needs as one Hydra multirun, reusing finished runs of the
same training config (also runs made with train.py -m), then evaluates; --dry-run only prints."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from run_helpers import check, read_json, run_train  # noqa: E402

STUDY = ["experiment=sg_clime_convergence", "debug=study"]  # 1 model x 2 seeds, tiny settings


@pytest.mark.slow
def test_study_fans_out_and_reuses_runs_made_with_train_py(tmp_path):
    dry = check(run_train([*STUDY, "--dry-run"], tmp_path, script="study.py"))
    commands = [line for line in dry.stdout.splitlines() if line.startswith("python scripts/train.py ")]
    assert len(commands) == 2 and "seed=0" in commands[0] and "seed=1" in commands[1]
    assert "2 training runs, as one multirun" in dry.stdout
    assert not (tmp_path / "checkpoints").exists()  # a dry run trains nothing
    # the user trains seed 0 from the printed command, in a sweep and under their own run name
    args = [a for a in shlex.split(commands[0])[2:] if not a.startswith(("run_name=", "logger."))]
    check(run_train(["-m", *args], tmp_path))
    own = "digits-mlp-none-none-s0"
    assert read_json(tmp_path / "checkpoints" / own / "run.json")["status"] == "finished"

    proc = check(run_train(STUDY, tmp_path, script="study.py", timeout=400))
    assert f"standard/s0: reuse {tmp_path / 'checkpoints' / own / 'best.ckpt'}" in proc.stdout
    assert "1 training runs, as one multirun" in proc.stdout
    assert (proc.stdout + proc.stderr).count("Launching 1 jobs locally") == 1
    trained = shlex.split(commands[1])[-1].removeprefix("run_name=")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == sorted([own, trained])
    # the study's own runs share a W&B group and tags
    logger = read_json(tmp_path / "outputs" / trained / "config.json")["logger"]
    assert logger["group"] == "sg_clime_convergence-digits-mlp" and logger["tags"] == ["study", "sg_clime_convergence"]
    (results,) = (tmp_path / "outputs" / "studies").glob("sg_clime_convergence-digits-mlp/*/results.json")
    models = json.loads(results.read_text())["models"]
    assert models["standard/s0"]["run_name"] == own and models["standard/s1"]["run_name"] == trained
    assert all(m["reused"] for m in models.values())  # the study itself trained nothing in-process
