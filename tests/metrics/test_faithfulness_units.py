"""Tan & Tian's faithfulness compares each explanation with the reference in its own units."""

import pytest
import torch

from rxlit.explain import explain
from rxlit.metrics import tan_faithfulness
from rxlit.metrics.faithfulness import group_sums
from rxlit.metrics.perturbations import resolve_groups

SCALES = (0.25, 0.5, 2.0, 4.0)
LIME16 = {"features": "grid", "n_features": 16}   # the same 2x2 patches as groups=16


def group_output_differences(model, x, y, n_groups=16):
    """``df_G = f(x) - f(x with G := 0)`` per example and group, and the group labels."""
    labels = resolve_groups(n_groups, x)
    G = int(labels.max()) + 1
    with torch.no_grad():
        f = model(x).gather(1, y.view(-1, 1)).squeeze(1)
        removed = [model(torch.where((labels == g).unsqueeze(1), 0.0, x)).gather(1, y.view(-1, 1)).squeeze(1)
                   for g in range(G)]  # 16 groups: a short loop builds the reference by hand
    return f.unsqueeze(1) - torch.stack(removed, 1), labels


def test_exact_group_output_differences_score_best_among_their_scaled_copies(digits_mlp):
    model, x, y = digits_mlp
    x, y = x[:8], y[:8]
    df, labels = group_output_differences(model, x, y)
    # the feature's output difference copied to each of its pixels: LIME's / KernelSHAP's layout
    exact = df.gather(1, labels.flatten(1)).view_as(x)
    kw = dict(groups=16, method="lime", method_options=LIME16)
    best = tan_faithfulness(model, x, y, exact, **kw)
    for scale in SCALES:
        assert (tan_faithfulness(model, x, y, scale * exact, **kw) < best).all(), scale
    for similarity in ("pearson", "spearman"):
        torch.testing.assert_close(tan_faithfulness(model, x, y, exact, similarity=similarity, **kw),
                                   torch.ones(8))
    # Tan & Tian's literal protocol compares it with the slope df_G / c_G: a shrunk copy scores higher
    paper = {s: tan_faithfulness(model, x, y, s * exact, protocol="paper", **kw).mean() for s in (1.0, *SCALES)}
    assert max(paper, key=paper.get) < 1.0
    # the same differences spread over the pixels (a per-element attribution such as Grad x Input)
    c = group_sums(x, labels, 16)
    spread = x * torch.where(c > 0, df / c.clamp_min(1e-12), 0).gather(1, labels.flatten(1)).view_as(x)
    per_element = dict(groups=16, method="grad_x_input")
    best = tan_faithfulness(model, x, y, spread, **per_element)
    for scale in SCALES:
        assert (tan_faithfulness(model, x, y, scale * spread, **per_element) < best).all(), scale


def test_grad_x_input_of_a_linear_model_is_exact_in_attribution_units():
    from metric_nets import Linear

    g = torch.Generator().manual_seed(0)
    theta = torch.randn(64, generator=g, dtype=torch.float64)
    x = torch.rand(4, 1, 8, 8, generator=g, dtype=torch.float64)
    model = Linear(theta)
    gi = explain(model, x, 0, "grad_x_input")
    assert (tan_faithfulness(model, x, 0, gi, groups=16, method="grad_x_input") > 1e8).all()
    # the same numbers read as a slope (the paper's protocol) are not the slope p
    assert (tan_faithfulness(model, x, 0, gi, groups=16, method="grad_x_input", protocol="paper") < 10).all()
    # units may be given for attributions of an undeclared callable; unknown units are refused
    assert (tan_faithfulness(model, x, 0, gi, groups=16, units="attribution") > 1e8).all()
    with pytest.raises(ValueError, match="units of method .* are not declared"):
        tan_faithfulness(model, x, 0, gi, groups=16, method=lambda m, x, t: x)
    with pytest.raises(ValueError, match="unknown protocol"):
        tan_faithfulness(model, x, 0, gi, groups=16, protocol="literal")
