"""scripts/compare.py over three digits models (standard, PGD, gradient norm): the table, the rank
correlation between model and explanation Lipschitz, the scatter and the W&B run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rxlit.analysis.compare import wilson
from rxlit.analysis.wandb_offline import find_offline_runs, read_offline_run
from rxlit.stats import spearman

REPO = Path(__file__).resolve().parents[2]
EXPLAIN = ["explain=default", "explain.n_examples=8", "explain.n_saliency_examples=0", "explain.progress=false",
           "~explain.methods", "+explain.methods={grad: {}, smoothgrad: {sigma: 0.03, n_samples: 3}}",
           "explain.metrics.local_lipschitz.n_samples=3", "explain.metrics.infidelity.n_samples=4",
           "explain.metrics.tan_faithfulness.groups=8", "explain.metrics.model_local_lipschitz.n_samples=3",
           "explain.metrics.model_smoothness.n_samples=3", "+explain.metrics.robust_accuracy.steps=2"]
REGIMES = {"standard": [], "pgd": ["adv=pgd"], "gradnorm": ["reg=gradnorm"]}


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    from rxlit_configs import TINY, compose

    from rxlit.app.train import train

    root = tmp_path_factory.mktemp("compare")
    folders = {}
    for name, overrides in REGIMES.items():
        out = root / name
        train(compose("train", [*TINY, f"paths.output_dir={out}", f"paths.checkpoints={root / 'ckpt'}", *EXPLAIN,
                                *overrides]))
        folders[name] = out
    return root, folders


def xai_values(folder: Path) -> dict:
    (path,) = (folder / "xai").glob("*_epoch*.json")
    return json.loads(path.read_text())["metrics"]


@pytest.mark.slow
def test_compare_three_models(three_runs):
    root, folders = three_runs
    out = root / "report"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "compare.py"), *map(str, folders.values()),
                           "--out", str(out)], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    labels = ["digits-small_cnn-none-none-s0", "digits-small_cnn-pgd-none-s0", "digits-small_cnn-none-gradnorm-s0"]
    text = (out / "compare.md").read_text()
    for label in labels:
        assert f"| {label} |" in text
    assert "| model | accuracy | robust accuracy | model Lipschitz L | model smoothness H | grad Lipschitz | " \
           "grad faithfulness | smoothgrad Lipschitz | smoothgrad faithfulness |" in text
    saved = json.loads((out / "compare.json").read_text())
    values = {name: xai_values(folder) for name, folder in folders.items()}
    # table cells are the runs' own numbers
    rows = {row[0]: row for row in saved["table"]["rows"]}
    column = saved["table"]["columns"].index("grad Lipschitz")
    for name, label in zip(REGIMES, labels):
        assert rows[label][column]["mean"] == pytest.approx(values[name]["xai/local_lipschitz/grad"]["mean"])
        robust = values[name]["model/robust_accuracy"]
        low, high = wilson(robust["mean"], robust["n"])
        robust_cell = rows[label][saved["table"]["columns"].index("robust accuracy")]
        assert (robust_cell["low"], robust_cell["high"]) == pytest.approx((low, high))
        assert 0.0 <= low <= robust["mean"] <= high <= 1.0
    # the rank correlation (scipy) equals rxlit's own Spearman implementation on the same numbers
    for row in saved["correlations"]:
        lip = [values[n]["model/model_local_lipschitz"]["mean"] for n in REGIMES]
        expl = [values[n][f"xai/local_lipschitz/{row['method']}"]["mean"] for n in REGIMES]
        assert row["n_models"] == 3
        assert row["rho_L"] == pytest.approx(spearman(lip, expl))
    assert {row["method"] for row in saved["correlations"]} == {"grad", "smoothgrad"}
    assert "## Rank correlation across models" in text and "| grad | 3 |" in text
    png = out / "lipschitz_scatter.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and "![explanation vs model Lipschitz](lipschitz_scatter.png)" in text
    with (out / "compare.csv").open() as f:
        assert len(list(csv.reader(f))) == 4
    (run_dir,) = find_offline_runs(out)
    history = read_offline_run(run_dir, expect={"compare/table/_type", "compare/lipschitz_scatter/_type"})["history"]
    logged = {key for row in history for key in row}
    assert {"compare/table/_type", "compare/rank_correlation/_type", "compare/lipschitz_scatter/_type"} <= logged


def test_wilson_interval_matches_textbook_values():
    # Wilson score intervals (95%): 5/10 -> [0.2366, 0.7634]; 0/8 -> [0, 0.3244]; unknown n -> no interval
    assert wilson(0.5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(0.0, 8) == pytest.approx((0.0, 0.3244), abs=1e-4)
    low, high = wilson(0.9, None)
    assert low != low and high != high  # NaN


def test_compare_refuses_folders_without_an_evaluation(tmp_path):
    from rxlit.analysis.compare import compare

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no evaluation"):
        compare([tmp_path / "empty"], tmp_path / "out", wandb="disabled")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        compare([tmp_path / "nope"], tmp_path / "out", wandb="disabled")
