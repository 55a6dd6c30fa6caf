"""Report rendering, study config handling and Yeh et al.'s explanation smoothing."""

from __future__ import annotations

import json

import pytest
import torch

from rxlit.analysis.report import (
    _pyplot,
    find_results,
    format_cell,
    markdown_table,
    place_labels,
    plot_saliency,
    write_report,
)
from rxlit.analysis.studies.infidelity_table import smoothed_explanation
from rxlit.app.study import compose_train, config_hash, study_settings
from rxlit.explain import explain
from rxlit.rng import ExampleRNG


class Linear(torch.nn.Module):
    def __init__(self, theta: torch.Tensor):
        super().__init__()
        self.theta = torch.nn.Parameter(theta)

    def forward(self, x):
        return torch.stack([(x * self.theta).flatten(1).sum(1), -(x * self.theta).flatten(1).sum(1)], 1)


def test_smoothed_explanation_closed_forms():
    theta = torch.randn(1, 4, 4, dtype=torch.float64)
    model, x = Linear(theta), torch.rand(3, 1, 4, 4, dtype=torch.float64)
    target = torch.zeros(3, dtype=torch.long)
    gen = ExampleRNG(0, torch.arange(3))
    # the gradient of a linear model is theta at every neighbour: smoothing changes nothing
    sg = explain(model, x, target, smoothed_explanation("grad", 0.2, 8), generator=gen)
    torch.testing.assert_close(sg, theta.expand_as(x))
    # grad x input averages (a fresh generator: an ExampleRNG advances as it draws) (x + z) * theta: x * theta plus theta times the mean of the keyed noise
    fresh = ExampleRNG(0, torch.arange(3))
    gi = explain(model, x, target, smoothed_explanation("grad_x_input", 0.2, 8), generator=fresh)
    from rxlit import rng

    z = 0.2 * rng.normal(ExampleRNG(0, torch.arange(3)), 3, (8, 1, 4, 4), dtype=torch.float64)
    torch.testing.assert_close(gi, (x + z.mean(1)) * theta)


def test_format_and_markdown_table():
    assert format_cell({"mean": 1.23456, "low": 1.0, "high": 1.5}) == "1.23 [1, 1.5]"
    assert format_cell(True) == "yes" and format_cell(None) == "" and format_cell(0.000123456) == "0.000123"
    assert format_cell("1/||phi - p||") == "1/\\|\\|phi - p\\|\\|"   # pipes would split the cell
    md = markdown_table({"title": "T", "columns": ["a", "b"], "rows": [["x", 2.0]]})
    assert md.splitlines()[2:] == ["| a | b |", "|---|---|", "| x | 2 |"]


def test_find_results_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="scripts/study.py experiment=nope"):
        find_results("nope", outputs=tmp_path)


def test_report_from_minimal_results(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    results = {"study": "demo", "data": "digits", "model_name": "mlp", "wall_time_s": 1.0, "device": "cpu",
               "torch": "x", "command": "python scripts/study.py experiment=demo", "settings": {}, "config": {},
               "tables": [], "scatters": [], "saliency": [],
               "curves": [{"title": "c", "x_label": "s", "y_label": "v", "file": "c.png", "log_x": True,
                           "series": [{"label": "a", "x": [0.1, 1], "mean": [1, 2], "low": [0.5, 1], "high": [2, 3]}]}],
               "claims": [{"claim": "C", "paper": "p", "measured": "m", "verdict": "not reproduced", "why": "w"},
                          {"claim": "D", "paper": "p", "measured": "m", "verdict": "inconclusive", "why": "v"}]}
    (run / "results.json").write_text(json.dumps(results))
    report = write_report(run, reports=tmp_path / "reports", wandb=False)
    text = report.read_text()
    assert "0 of 2 claims reproduced, 1 not reproduced, 1 inconclusive" in text
    assert "**Not reproduced**: C. w." in text and "**Inconclusive**: D. v." in text
    assert (report.parent / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_study_settings_and_hash():
    with pytest.raises(ValueError, match="experiment=<name>"):
        study_settings(compose_train([]))
    cfg = compose_train(["experiment=free_lunch", "debug=study"])
    s = study_settings(cfg)
    assert set(s["models"]) == {"standard", "pgd_eps0.1", "spectral"}   # null entries remove models
    base = {"data": {"name": "digits", "root": "a"}, "trainer": {"max_epochs": 1}, "seed": 0}
    assert config_hash(base) == config_hash({**base, "data": {"name": "digits", "root": "b"}})  # paths ignored
    assert config_hash(base) != config_hash({**base, "trainer": {"max_epochs": 2}})


def test_point_labels_do_not_overlap():
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    xs, ys = [1.0, 1.02, 1.04, 1.05, 2.0, 2.01, 3.0, 3.01, 3.02], [1.0, 1.01, 1.03, 1.0, 2.0, 2.02, 1.5, 1.52, 1.49]
    ax.plot(xs, ys, "o")
    texts = place_labels(fig, ax, [(f"model_{i}", x, y) for i, (x, y) in enumerate(zip(xs, ys, strict=True))])
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert len(boxes) == 9
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plt.close(fig)


def test_saliency_grid_uses_a_shared_signed_scale_with_colour_bars(tmp_path):
    grid = torch.randn(3, 3, 8, 8).numpy()
    grid[:, 0] = grid[:, 0].clip(0, 1)
    drawn = plot_saliency(grid, ["input", "a", "b"], "t", tmp_path / "s.png")
    m = float(abs(grid[:, 1:]).max())
    assert {clim[1:] for clim in drawn["clims"]} == {(-m, m)}   # one symmetric scale for every panel
    assert drawn["colorbars"] == 2
    per_column = plot_saliency(grid, ["input", "a", "b"], "t", tmp_path / "s.png", vmax=[1.0, 2.0])
    assert {clim for clim in per_column["clims"]} == {(1, -1.0, 1.0), (2, -2.0, 2.0)}
