"""scripts/eval.py: checkpoint evaluation matches the callback; bad checkpoints fail clearly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from callback_settings import TINY_EXPLAIN

from rxlit.analysis.wandb_offline import find_offline_runs, read_offline_run
from rxlit.app.evaluate import evaluate_checkpoint
from rxlit.app.train import train
from rxlit.training.checkpoint import CheckpointError

REPO = Path(__file__).resolve().parents[2]
# Same weights, subset, seed and epoch key, and the same code path: only float summation order
# could differ, and on one CPU process it does not.
MATCH_RTOL = 1e-6
# Replace the methods mapping ("explain.methods={...}" alone would merge into the configured one).
GRAD_ONLY = ["~explain.methods", "+explain.methods={grad: {}}"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 1-epoch digits run with the tiny explanation matrix evaluated after epoch 0."""
    from rxlit_configs import TINY, compose

    root = tmp_path_factory.mktemp("trained")
    overrides = [*TINY, f"paths.output_dir={root / 'out'}", f"paths.checkpoints={root / 'ckpt'}", *TINY_EXPLAIN]
    report = train(compose("train", overrides))
    return report, root


def eval_cfg(ckpt, out, *overrides, tiny=True):
    from rxlit_configs import compose

    explain = [*TINY_EXPLAIN, "explain.n_saliency_examples=0"] if tiny else []
    return compose("eval", [f"ckpt_path={ckpt}", f"output_dir={out}", "logger=none", *explain, *overrides])


@pytest.mark.slow
def test_eval_script_matches_callback_values(trained, tmp_path):
    report, root = trained
    out = tmp_path / "eval"
    args = [f"ckpt_path={report['checkpoint_dir']}/last.ckpt", "split=val", "logger=none",
            f"hydra.run.dir={out}", *TINY_EXPLAIN]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "eval.py"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    saved = json.loads((out / "metrics.json").read_text())
    callback = json.loads((root / "out" / "xai" / "val_epoch000.json").read_text())["metrics"]
    assert saved["epoch"] == 0 and saved["split"] == "val" and saved["n_examples"] == 8
    assert set(saved["summaries"]) == set(callback) | {"model/clean_accuracy"}  # eval.py always adds accuracy
    for key, summary in callback.items():
        assert saved["summaries"][key]["mean"] == pytest.approx(summary["mean"], rel=MATCH_RTOL), key
        assert saved["summaries"][key]["mean"] == pytest.approx(report["fit"][key], rel=1e-5), key
    # the nested view and the markdown table carry the same numbers; the table is printed too
    assert saved["metrics"]["xai"]["local_lipschitz"]["grad"]["mean"] == saved["summaries"]["xai/local_lipschitz/grad"]["mean"]
    table = (out / "metrics.md").read_text()
    assert "| method | local_lipschitz | tan_faithfulness | infidelity |" in table
    assert "| grad |" in table and "| robust_accuracy |" in table
    assert "local_lipschitz" in proc.stdout
    assert "normalisation: mean=[0.3053] std=[0.376] (from the checkpoint (rxlit))" in proc.stdout
    assert (out / "saliency.png").is_file()


@pytest.mark.slow
def test_weights_route_equals_checkpoint_route(trained, tmp_path):
    """The same train.py checkpoint through weights= (as a foreign Lightning file: prefix found,
    normalisation read from the file) gives the numbers of ckpt_path=."""
    from rxlit_configs import compose

    report, _ = trained
    ckpt = f"{report['checkpoint_dir']}/last.ckpt"
    tiny = [*TINY_EXPLAIN, "explain.n_saliency_examples=0", "epoch=0", "logger=none"]
    by_ckpt = evaluate_checkpoint(eval_cfg(ckpt, tmp_path / "a", "epoch=0"))
    by_weights = evaluate_checkpoint(compose("eval", [f"weights={ckpt}", "model=small_cnn", "data=digits",
                                                      f"output_dir={tmp_path / 'b'}", *tiny]))
    assert by_weights["format"] == "lightning" and "prefix 'model.backbone.' removed" in by_weights["notes"]
    assert by_weights["normalization"]["mean"] == pytest.approx(by_ckpt["normalization"]["mean"])
    assert set(by_weights["summaries"]) == set(by_ckpt["summaries"])
    for key, summary in by_ckpt["summaries"].items():
        assert by_weights["summaries"][key]["mean"] == pytest.approx(summary["mean"], rel=1e-6), key


@pytest.mark.slow
def test_eval_on_test_split_with_another_epoch_key(trained, tmp_path):
    report, _ = trained
    ckpt = f"{report['checkpoint_dir']}/last.ckpt"
    test_split = evaluate_checkpoint(eval_cfg(ckpt, tmp_path / "a", *GRAD_ONLY, "logger=wandb",
                                              "explain.n_saliency_examples=2"))
    assert test_split["split"] == "test" and test_split["epoch"] == 0
    assert set(test_split["metrics"]["xai"]["local_lipschitz"]) == {"grad"}
    # the configured logger (W&B offline here) holds the scalars and the saliency grid
    (run_dir,) = find_offline_runs(tmp_path / "a")
    history = read_offline_run(run_dir, expect={"xai/local_lipschitz/grad", "xai/saliency/_type", "xai/table/_type"})["history"]
    logged = {key: row[key] for row in history for key in row}
    assert logged["xai/local_lipschitz/grad"] == pytest.approx(test_split["scalars"]["xai/local_lipschitz/grad"])
    assert logged["xai/saliency/_type"].startswith("images")
    assert len(list((run_dir / "files" / "media" / "images").rglob("*.png"))) == 1
    other_epoch = evaluate_checkpoint(eval_cfg(ckpt, tmp_path / "b", *GRAD_ONLY, "epoch=5"))
    key = "xai/local_lipschitz/grad"
    # a different RNG epoch key draws different neighbours: close, but not identical values
    assert other_epoch["scalars"][key] != test_split["scalars"][key]
    assert other_epoch["scalars"][key] == pytest.approx(test_split["scalars"][key], rel=0.5)


def test_missing_and_corrupt_checkpoints_fail_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist: pass ckpt_path="):
        evaluate_checkpoint(eval_cfg(tmp_path / "nope.ckpt", tmp_path / "o"))
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="corrupt or not a torch checkpoint"):
        evaluate_checkpoint(eval_cfg(garbage, tmp_path / "o"))
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not written by rxlit's train.py.*use model=<arch> weights="):
        evaluate_checkpoint(eval_cfg(foreign, tmp_path / "o"))
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_truncated_and_mismatched_checkpoints_fail_clearly(trained, tmp_path):
    report, _ = trained
    ckpt = Path(report["checkpoint_dir"]) / "last.ckpt"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        evaluate_checkpoint(eval_cfg(truncated, tmp_path / "o"))
    # data set with other classes and image size than the checkpoint's
    with pytest.raises(CheckpointError, match=r"does not match data 'synthetic'.*num_classes: checkpoint 10 vs data 4"):
        evaluate_checkpoint(eval_cfg(ckpt, tmp_path / "o", "data=synthetic", "data.image_size=16"))
    # weights that do not fit the architecture the checkpoint describes
    state = torch.load(ckpt, weights_only=True)
    state["hyper_parameters"]["model"]["hidden"] = 32
    wrong = tmp_path / "wrong.ckpt"
    torch.save(state, wrong)
    with pytest.raises(CheckpointError, match="does not match the model it describes"):
        evaluate_checkpoint(eval_cfg(wrong, tmp_path / "o"))


def test_eval_refuses_bad_explain_config(trained, tmp_path):
    report, _ = trained
    ckpt = f"{report['checkpoint_dir']}/last.ckpt"
    with pytest.raises(ValueError, match=r"unknown explanation methods \['nosuch'\].*valid methods: clime"):
        evaluate_checkpoint(eval_cfg(ckpt, tmp_path / "o", "+explain.methods.nosuch={}"))
    with pytest.raises(ValueError, match="explain=none evaluates nothing"):
        evaluate_checkpoint(eval_cfg(ckpt, tmp_path / "o", "explain=none", tiny=False))
    assert not (tmp_path / "o" / "metrics.json").exists()


@pytest.mark.slow
def test_callback_eval_and_study_give_the_same_bound_ratios(trained, tmp_path):
    from rxlit_configs import compose

    from rxlit.analysis.studies.free_lunch import lipschitz_values
    from rxlit.app.evaluate import build_data, eval_spec, to_dict
    from rxlit.training.checkpoint import load_model, read_checkpoint

    report, root = trained
    ckpt = f"{report['checkpoint_dir']}/last.ckpt"
    callback = json.loads((root / "out" / "xai" / "val_epoch000.json").read_text())["metrics"]
    evaluated = evaluate_checkpoint(eval_cfg(ckpt, tmp_path / "e", "split=val"))["summaries"]
    # the study's evaluation of the same model, examples and keys, with the callback's settings
    cfg = to_dict(compose("eval", [f"ckpt_path={ckpt}", "split=val", f"output_dir={tmp_path}", *TINY_EXPLAIN]))
    hparams = read_checkpoint(ckpt)["hyper_parameters"]
    spec = eval_spec(cfg, int(hparams["seed"]))
    datamodule, _ = build_data(cfg, hparams, ckpt)
    x, y, index = datamodule.eval_subset(spec.n_examples, split="val")
    model, _ = load_model(ckpt)
    settings = {"methods": spec.methods, "lipschitz": spec.metrics["local_lipschitz"],
                "model_metric": spec.metrics["model_local_lipschitz"]}
    study = lipschitz_values(model, x, y, index, settings, seed=spec.seed, epoch=0)["bound_ratio"]
    assert set(study) == {"smoothgrad", "lime"}
    for method, ratio in study.items():
        key = f"xai/bound_ratio/{method}"
        assert callback[key]["mean"] == pytest.approx(float(ratio.mean()), rel=1e-5), method
        assert evaluated[key]["mean"] == pytest.approx(float(ratio.mean()), rel=1e-5), method
        assert callback[key]["n"] == evaluated[key]["n"] == 8
