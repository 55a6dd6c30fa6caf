"""A study model whose training diverges is a result of its configuration: the study reports it, leaves
it out of its tables and claims, and never retrains it; a model with no seed left is refused by name."""

from __future__ import annotations

import json

import pytest
from study_helpers import run_tiny

from rxlit.app.study import ModelDiverged, StudyContext, compose_train

STUDY = "sg_clime_convergence"  # one model ("standard") x 2 seeds on its tiny settings
DIVERGED = "NonFiniteLossError: the training loss exploded (test)"


def tiny_context(tmp_path, extra=()) -> StudyContext:
    overrides = [f"experiment={STUDY}", "debug=study", "logger=none", f"paths.checkpoints={tmp_path / 'ckpt'}",
                 f"paths.output_dir={tmp_path / 'run'}", *extra]
    return StudyContext(compose_train(overrides), overrides, tmp_path / "run", command="")


def test_a_diverged_seed_is_reported_and_left_out(tmp_path):
    job = tiny_context(tmp_path).job("standard", 1)
    folder = tmp_path / "ckpt" / job["run_name"]
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"run_name": job["run_name"], "config_hash": job["config_hash"],
                                                 "status": "failed", "error": DIVERGED}))
    results, report = run_tiny(STUDY, tmp_path)
    assert list(results["diverged"]) == ["standard/s1"] and results["diverged"]["standard/s1"]["error"] == DIVERGED
    assert list(results["models"]) == ["standard/s0"]  # seed 1 was neither retrained nor evaluated
    assert "(1 seeds)" in results["curves"][0]["title"]
    table = results["tables"][-1]
    assert table["title"].startswith("Models whose training diverged") and table["rows"][0][0] == "standard/s1"
    assert "Models whose training diverged" in report.read_text()


def test_every_seed_diverging_names_the_model_and_keeps_the_runs(tmp_path):
    ctx = tiny_context(tmp_path, ["optim.lr=10000"])  # the divergence check stops the training at once
    with pytest.raises(ModelDiverged, match="every seed of study model 'standard' diverged.*NonFiniteLossError"):
        ctx.seeds_of("standard")
    assert sorted(ctx.diverged) == ["standard/s0", "standard/s1"]
    index = json.loads((tmp_path / "ckpt" / ctx.job("standard", 0)["run_name"] / "run.json").read_text())
    assert index["status"] == "failed" and index["error"].startswith("NonFiniteLossError")
    again = tiny_context(tmp_path, ["optim.lr=10000"])  # a second study reuses the verdict: nothing retrained
    with pytest.raises(ModelDiverged):
        again.model("standard", 0)
    assert "standard/s0" in again.diverged


def test_paired_statistics_keep_the_seeds_every_model_has():
    from rxlit.analysis.studies.free_lunch import paired

    per_model = {"a": [{"seed": 0}, {"seed": 1}, {"seed": 2}], "b": [{"seed": 2}, {"seed": 0}]}
    assert {k: [e["seed"] for e in v] for k, v in paired(per_model).items()} == {"a": [0, 2], "b": [0, 2]}
    assert [e["seed"] for e in paired(per_model, ["a"])["a"]] == [0, 1, 2]
