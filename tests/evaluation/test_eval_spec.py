"""Parsing of the explain= config, the result tables and the console summary (no training)."""

import math

import numpy as np
import pytest
import torch

from rxlit.app.summary import print_summary
from rxlit.evaluation import parse_spec
from rxlit.evaluation.engine import bound_method, evaluate_subset
from rxlit.evaluation.tables import markdown, nested


def test_list_and_mapping_forms_give_the_same_spec():
    listed = parse_spec({"methods": ["grad", {"lime": {"n_samples": 8}}, {"name": "smoothgrad", "options": {"n_samples": 2}}],
                         "metrics": ["local_lipschitz"]}, seed=3)
    mapped = parse_spec({"methods": {"grad": {}, "lime": {"n_samples": 8}, "smoothgrad": {"n_samples": 2}},
                         "metrics": {"local_lipschitz": {}}}, seed=3)
    assert listed == mapped
    assert listed.seed == 3 and parse_spec({"metrics": ["model_smoothness"], "seed": 7}, seed=3).seed == 7
    assert mapped.n_tasks() == 3


@pytest.mark.parametrize("cfg, message", [
    ({"metrics": {}}, "explain.metrics is empty"),
    ({"metrics": ["local_lipschitz"], "methods": []}, "explain.methods is empty"),
    ({"methods": ["grad"], "metrics": ["local_lipschitz"], "every_n_epochs": 0}, "explain.every_n_epochs must be a positive integer"),
    ({"methods": ["grad"], "metrics": ["local_lipschitz"], "target": "logit"}, "explain.target must be one of label, pred"),
    ({"metrics": ["local_lipschitz"], "n_example": 3}, "unknown explain config key(s) ['n_example']"),
    ({"metrics": {"robust_accuracy": {"epsilon": 1}}},
     "unknown option(s) ['epsilon'] for metric 'robust_accuracy' in the explain config; valid options: attack, eps, step, steps"),
    ({"metrics": {"local_lipschitz": {"method": "lime"}}}, "unknown option(s) ['method']"),
])
def test_bad_specs_name_the_fix(cfg, message):
    with pytest.raises(ValueError) as err:
        parse_spec(cfg)
    assert message in str(err.value)


def test_bound_method_options_reach_the_method():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = torch.rand(2, 1, 2, 2), torch.tensor([0, 2])
    method = bound_method("integrated_gradients", {"steps": 2, "baseline": 0.5})
    # IG of a linear model is exact for any rule: weight * (x - baseline)
    expected = net[1].weight[y].reshape(2, 1, 2, 2) * (x - 0.5)
    assert torch.allclose(method(net, x, y), expected, atol=1e-6)


def test_evaluate_subset_is_independent_of_sharding():
    """Per-example keyed noise: the union of two shards gives the full-subset aggregate."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    x, y, index = torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2]), torch.arange(10, 16)
    spec = parse_spec({"methods": {"smoothgrad": {"n_samples": 3}}, "metrics": {"local_lipschitz": {"n_samples": 4}}})
    full = evaluate_subset(net, x, y, index, spec, epoch=2)
    shards = [evaluate_subset(net, x[r::2], y[r::2], index[r::2], spec, epoch=2) for r in range(2)]
    key = "xai/local_lipschitz/smoothgrad"
    mean = (shards[0].summaries[key]["mean"] * 3 + shards[1].summaries[key]["mean"] * 3) / 6
    assert full.summaries[key]["mean"] == pytest.approx(mean, rel=1e-6)
    assert full.summaries[key]["n"] == 6
    again = evaluate_subset(net, x, y, index, spec, epoch=2)
    assert again.summaries[key] == full.summaries[key]  # same seed, same numbers
    assert evaluate_subset(net, x, y, index, spec, epoch=3).summaries[key]["mean"] != full.summaries[key]["mean"]


SUMMARIES = {
    "xai/local_lipschitz/grad": {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 8},
    "xai/infidelity/grad": {"mean": 0.01, "ci_low": 0.0, "ci_high": 0.02, "n": 8},
    "xai/local_lipschitz/lime": {"mean": 0.25, "ci_low": 0.2, "ci_high": 0.3, "n": 8},
    "model/robust_accuracy": {"mean": 0.75, "ci_low": 0.5, "ci_high": 1.0, "n": 8},
    "xai/bound_ratio/grad": {"mean": 1.0, "ci_low": math.nan, "ci_high": math.nan, "n": 8},
}


def test_markdown_and_nested_tables():
    table = markdown(SUMMARIES, title="run")
    assert "| method | local_lipschitz | infidelity | bound_ratio |" in table
    assert "| grad | 0.5 [0.4, 0.6] | 0.01 [0, 0.02] | 1 |" in table
    assert "| lime | 0.25 [0.2, 0.3] | - | - |" in table
    assert "| robust_accuracy | 0.75 [0.5, 1] | 8 |" in table
    view = nested(SUMMARIES)
    assert view["xai"]["local_lipschitz"]["lime"]["mean"] == 0.25 and view["model"]["robust_accuracy"]["n"] == 8


def test_console_summary_shows_the_explanation_matrix(capsys):
    report = {"run_name": "r", "fit": {"val/acc": 0.9, "xai/time_s": 1.5,
                                       **{k: v["mean"] for k, v in SUMMARIES.items()}}, "test": {"test/acc": 0.8}}
    print_summary(report)
    out = capsys.readouterr().out
    assert "explanations (last evaluation)" in out and "local_lipschitz" in out
    assert "model/robust_accuracy" in out and "xai/time_s" in out and "val/acc" in out
    assert out.count("xai/local_lipschitz/grad") == 0  # shown as a matrix cell, not a flat row


@pytest.mark.parametrize("max_epochs, every_n, expected", [(10, 5, 2), (10, 3, 4), (10, 1, 10), (3, 2, 2), (2, 5, 1)])
def test_number_of_evaluations_matches_the_schedule(max_epochs, every_n, expected):
    """The cost tool's count equals the callback's schedule (every n epochs, plus the last)."""
    from types import SimpleNamespace

    from rxlit.app.cost import n_evaluations
    from rxlit.evaluation import ExplanationEvaluation

    callback = ExplanationEvaluation(parse_spec({"methods": ["grad"], "metrics": ["local_lipschitz"],
                                                 "every_n_epochs": every_n}))
    runs = sum(callback.should_run(SimpleNamespace(current_epoch=e, max_epochs=max_epochs, max_steps=-1,
                                                   global_step=e, should_stop=False)) for e in range(max_epochs))
    assert runs == n_evaluations(max_epochs, every_n) == expected


def test_saliency_grid_colours_and_layout():
    from rxlit.evaluation.saliency import CELL, heat_rgb, pick_examples, saliency_grid

    phi = torch.tensor([[[[2.0, -2.0], [0.0, 1.0]]]])  # (1, 1, 2, 2): scaled by its max |.| = 2
    rgb = heat_rgb(phi[0])
    assert rgb[0, 0].tolist() == [1.0, 0.0, 0.0]   # +max: red
    assert rgb[0, 1].tolist() == [0.0, 0.0, 1.0]   # -max: blue
    assert rgb[1, 0].tolist() == [1.0, 1.0, 1.0]   # zero: white
    assert rgb[1, 1].tolist() == [1.0, 0.5, 0.5]   # half: light red
    x, y = torch.rand(3, 1, 8, 8), torch.tensor([4, 4, 7])
    grid = saliency_grid(x, y, {"grad": torch.randn(3, 1, 8, 8), "lime": torch.randn(3, 1, 8, 8)}, title="t")
    assert grid.dtype == np.uint8 and grid.shape[2] == 3
    assert grid.shape[0] >= 3 * CELL and grid.shape[1] >= 3 * CELL  # 3 rows x (input + 2 methods)
    assert pick_examples(torch.tensor([4, 4, 7, 1]), 3).tolist() == [0, 2, 3]  # one per class first
