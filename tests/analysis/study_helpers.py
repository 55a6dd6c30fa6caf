"""Run a study end to end on its debug=study settings inside a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rxlit.analysis.report import write_report
from rxlit.app.study import compose_train, run_study


def run_tiny(name: str, tmp_path: Path, ckpt: Path | None = None, extra: tuple[str, ...] = ()) -> tuple[dict, Path]:
    """``ckpt``: a checkpoints folder shared between tests (the tiny standard model is trained once)."""
    overrides = [f"experiment={name}", "debug=study", "logger=none",
                 f"paths.checkpoints={ckpt or tmp_path / 'ckpt'}", f"paths.output_dir={tmp_path / 'run'}", *extra]
    cfg = compose_train(overrides)
    results_path = run_study(cfg, overrides, tmp_path / "run")
    assert_resumable(tmp_path / "run")
    report = write_report(tmp_path / "run", reports=tmp_path / "reports", wandb=False)
    return json.loads(results_path.read_text()), report


def assert_resumable(run_dir: Path) -> None:
    """Every evaluation the study saved loads as ``study.resume`` loads it (``weights_only``)."""
    saved = sorted((run_dir / "evaluations").glob("*.pt"))
    assert saved, "the study saved no evaluation"
    for path in saved:
        assert torch.load(path, weights_only=True)["fingerprint"]
