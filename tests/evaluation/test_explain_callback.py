"""The per-epoch explanation evaluation inside a real (tiny) digits training run."""

import json
import math

import numpy as np
import pytest
from callback_settings import METHODS, TINY_EXPLAIN, expected_keys
from PIL import Image

from rxlit.analysis.wandb_offline import find_offline_runs, read_offline_run
from rxlit.app.train import train


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory):
    """3 epochs, evaluation every 2 epochs (and after the last): evaluations after epochs 1 and 2."""
    from rxlit_configs import TINY, compose

    root = tmp_path_factory.mktemp("run")
    overrides = [*TINY, f"paths.output_dir={root / 'out'}", f"paths.checkpoints={root / 'ckpt'}",
                 *TINY_EXPLAIN, "explain.every_n_epochs=2", "trainer.max_epochs=3", "logger=wandb"]
    report = train(compose("train", overrides))
    return report, root / "out"


@pytest.mark.slow
def test_run_logs_every_configured_key_finite(wandb_run):
    report, _ = wandb_run
    logged = {k for k in report["fit"] if k.startswith(("xai/", "model/"))}
    assert logged == expected_keys()
    for key in logged:
        assert math.isfinite(report["fit"][key]), key
    fit = report["fit"]
    assert 0.0 <= fit["model/robust_accuracy"] <= 1.0
    for method in METHODS:
        assert fit[f"xai/local_lipschitz/{method}"] > 0
        assert fit[f"xai/tan_faithfulness/{method}"] > 0  # 1 / ||phi - p||
        assert fit[f"xai/infidelity/{method}"] >= 0
    # Grad's Lipschitz estimate and the model smoothness H are the same estimator on the same keyed
    # noise: Theorem 4.1's Grad <= H is an identity there, so it is not logged as a check
    assert fit["xai/local_lipschitz/grad"] == pytest.approx(fit["model/model_smoothness"], rel=1e-5)
    for method in ("smoothgrad", "lime"):
        assert 0 < fit[f"xai/bound_ratio/{method}"] < 1
    assert 0 < fit["xai/time_s"] and 0 < fit["xai/epoch_time_s"] and 0 < fit["xai/cost_fraction"]


@pytest.mark.slow
def test_evaluates_every_n_epochs_and_after_the_last(wandb_run):
    _, out = wandb_run
    files = sorted(p.name for p in (out / "xai").iterdir())
    assert files == ["saliency_val_epoch001.png", "saliency_val_epoch002.png", "val_epoch001.json",
                     "val_epoch002.json"]
    saved = json.loads((out / "xai" / "val_epoch002.json").read_text())
    assert saved["epoch"] == 2 and saved["split"] == "val"
    assert saved["metrics"]["xai/local_lipschitz/grad"]["n"] == 8  # the fixed subset, every example
    png = np.asarray(Image.open(out / "xai" / "saliency_val_epoch002.png"))
    assert png.ndim == 3 and png.shape[0] > 50 and png.std() > 1  # a drawn grid, not a blank image


@pytest.mark.slow
def test_wandb_offline_run_holds_scalars_and_images(wandb_run):
    report, out = wandb_run
    (run_dir,) = find_offline_runs(out)
    run = read_offline_run(run_dir, expect=expected_keys() | {"xai/saliency/_type", "xai/table/_type", "test/acc"})
    rows = [row for row in run["history"] if "xai/local_lipschitz/grad" in row]
    assert len(rows) == 2  # two evaluations
    for key in expected_keys():
        assert all(math.isfinite(row[key]) for row in rows if key in row), key
        assert any(key in row for row in rows), key
    assert rows[-1]["xai/local_lipschitz/grad"] == pytest.approx(report["fit"]["xai/local_lipschitz/grad"], rel=1e-6)
    # the reader flattens logged media to "<key>/<field>"
    images = [row for row in run["history"] if "xai/saliency/_type" in row]
    tables = [row for row in run["history"] if "xai/table/_type" in row]
    assert len(images) == 2 and len(tables) == 2
    assert images[0]["xai/saliency/_type"].startswith("images") and images[0]["xai/saliency/count"] == 1
    assert images[-1]["xai/saliency/captions"] == ["epoch 2 (val)"]
    media = sorted((run_dir / "files" / "media" / "images").rglob("*.png"))
    assert len(media) == 2
    grid = np.asarray(Image.open(media[-1]))
    assert grid.shape[0] > 50 and grid.std() > 1
    table_files = sorted((run_dir / "files" / "media" / "table").rglob("*.table.json"))
    assert table_files, "the per-epoch W&B table was not written"
    table = json.loads(table_files[-1].read_text())
    assert table["columns"][:4] == ["epoch", "split", "method", "metric"]
    assert {row[0] for row in table["data"]} == {1, 2}  # cumulative over the evaluations


@pytest.mark.parametrize("override, message", [
    ("+explain.methods.nosuch={}", "unknown explanation methods ['nosuch']"),
    ("+explain.metrics.nosuch={}", "unknown explanation metrics ['nosuch']"),
    ("+explain.methods.lime.n_sample=5", "unknown option(s) ['n_sample'] for method 'lime'"),
    ("+explain.metrics.local_lipschitz.steps=5", "unknown option(s) ['steps'] for metric 'local_lipschitz'"),
    ("explain.split=validation", "explain.split must be one of train, val, test"),
    ("explain.n_examples=0", "explain.n_examples must be a positive integer"),
])
def test_bad_explain_config_refused_before_training(make_cfg, tmp_path, override, message):
    with pytest.raises(ValueError) as err:
        train(make_cfg(["explain=default", override]))
    assert message in str(err.value)
    assert "valid" in str(err.value) or "must be" in str(err.value)  # the message names the fix
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "out" / "metrics.json").exists()


@pytest.mark.slow
def test_resume_keeps_cost_accounting_and_table(make_cfg, tmp_path):
    first = train(make_cfg([*TINY_EXPLAIN, "explain.every_n_epochs=1", "trainer.max_epochs=1"]))
    last = f"{first['checkpoint_dir']}/last.ckpt"
    resumed = train(make_cfg([*TINY_EXPLAIN, "explain.every_n_epochs=1", "trainer.max_epochs=2",
                              f"ckpt_path={last}"]))
    import torch

    from rxlit.training.checkpoint import load_model

    load_model(f"{resumed['checkpoint_dir']}/last.ckpt")  # the saved state stays weights-only loadable
    state = torch.load(f"{resumed['checkpoint_dir']}/last.ckpt", weights_only=True)["callbacks"]
    (saved,) = [v for k, v in state.items() if k.startswith("ExplanationEvaluation")]
    # two evaluations (epochs 0 and 1) and two training epochs, the first from before the resume
    assert sorted({row[0] for row in saved["table_rows"]}) == [0, 1]
    assert saved["xai_time"] > first["fit"]["xai/time_s"] > 0
    assert resumed["fit"]["xai/cost_fraction"] == pytest.approx(saved["xai_time"] / saved["train_time"], rel=1e-6)
