"""``sg_clime_convergence``: Agarwal et al. (ICML 2021), SmoothGrad and C-LIME converge together.

For standard models (several seeds) and sample counts ``n``: the distances ``||SG_n - CLIME_n||``,
``||SG_n - SG_ref||`` and ``||CLIME_n - CLIME_ref||`` (``ref``: a large-n estimate), relative to
``||SG_ref||``, with fresh keyed noise at every ``n``. Both estimate
``E[grad f(x + xi)] = sigma^-2 E[xi f(x + xi)]`` (Stein's identity), so every distance should
shrink like ``n^-1/2``: a log-log slope of -1/2 (C-LIME only once the regression is
overdetermined, ``n`` well above the ``d`` input elements). Each slope gets a 95% interval from a
paired bootstrap over examples and seeds; a claim is reproduced when the interval lies inside the
stated range.
"""

from __future__ import annotations

import math

import torch

from rxlit import stats
from rxlit.analysis.studies.common import (
    cell,
    claim,
    fmt,
    fmt_interval,
    interval,
    keyed_explain,
    mean,
    saliency_rows,
)
from rxlit.analysis.study import register_study

PAIRS = (("SG_n vs CLIME_n", "sg", "clime"), ("SG_n vs SG_ref", "sg", "sg_ref"),
         ("CLIME_n vs CLIME_ref", "clime", "clime_ref"))


def distance(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (a - b).flatten(1).norm(dim=1) / scale


def estimates(ctx, model, sigma: float, n: int, stream: int) -> dict:
    sg = keyed_explain(ctx, model, "smoothgrad", {"sigma": sigma, "n_samples": n}, stream=stream)
    clime = keyed_explain(ctx, model, "clime", {"sigma": sigma, "n_samples": n}, stream=stream + 1)
    return {"sg": sg, "clime": clime}


def distances(ctx, model, sigma: float, ns: list[int], n_ref: int) -> tuple[dict, dict]:
    """``{pair: [distance per example at each n]}`` for one model, and its reference estimates."""
    ref = estimates(ctx, model, sigma, n_ref, stream=1000)
    scale = ref["sg"].flatten(1).norm(dim=1).clamp_min(1e-12)
    dist = {label: [] for label, _, _ in PAIRS}
    for i, n in enumerate(ns):
        est = {**estimates(ctx, model, sigma, n, stream=2 * i), "sg_ref": ref["sg"], "clime_ref": ref["clime"]}
        for label, a, b in PAIRS:
            dist[label].append(distance(est[a], est[b], scale))
    dist["reference gap"] = [distance(ref["sg"], ref["clime"], scale)]
    return dist, ref


def slope_of(ns: list[int], fit: list[int]):
    """Bootstrap statistic: the log-log slope of the mean distances over the fitted ``n``."""
    return stats.rowwise(lambda row: stats.loglog_slope([ns[i] for i in fit], row[fit])[0])


@register_study("sg_clime_convergence")
def run(ctx) -> dict:
    s = ctx.study
    sigma, ns, n_ref = float(s["sigma"]), [int(n) for n in s["ns"]], int(s["n_ref"])
    per_seed, refs = [], []
    seeds = ctx.seeds_of(s["model"])
    for seed in seeds:
        dist, ref = ctx.evaluated(f"s{seed}", lambda seed=seed: distances(ctx, ctx.model(s["model"], seed), sigma, ns, n_ref))
        per_seed.append(dist)
        refs.append(ref)
        print(f"[sg_clime_convergence] seed {seed}: " + ", ".join(f"{k} {mean(v[-1]):.4g}" for k, v in dist.items()),
              flush=True)
    fit_min = int(s.get("fit_min_n", 0))
    fit = [i for i, n in enumerate(ns) if n >= fit_min]
    labels = [label for label, _, _ in PAIRS]
    slopes = {label: interval([d[label] for d in per_seed], slope_of(ns, fit)) for label in labels}
    cells = {label: [cell([d[label][i] for d in per_seed]) for i in range(len(ns))] for label in labels}
    ref_gap = cell([d["reference gap"][0] for d in per_seed])
    series = [{"label": f"{label} (slope {fmt(slopes[label]['estimate'], 2)})", "x": ns,
               "mean": [c["mean"] for c in cells[label]], "low": [c["low"] for c in cells[label]],
               "high": [c["high"] for c in cells[label]]} for label in labels]
    y0 = series[1]["mean"][0]
    series.append({"label": "n^-1/2", "x": [ns[0], ns[-1]], "mean": [y0, y0 * math.sqrt(ns[0] / ns[-1])],
                   "low": None, "high": None})
    d = ctx.subset()[0].flatten(1).shape[1]
    curve = {"title": f"SmoothGrad vs C-LIME, sigma {sigma}: distance / ||SG_ref|| against n ({len(seeds)} seeds)",
             "x_label": "samples n", "y_label": "relative L2 distance", "file": "convergence.png",
             "log_x": True, "log_y": True, "series": series}
    table = {"title": f"Relative distances (mean, 95% interval) against n; ref n = {n_ref}; d = {d} input elements",
             "columns": ["n", *labels], "rows": [[n, *[cells[k][i] for k in labels]] for i, n in enumerate(ns)]}
    slope_table = {"title": f"Log-log slopes (fit on n >= {fit_min}; n^-1/2 gives -0.5; 95% interval)",
                   "columns": ["distance", "slope"],
                   "rows": [[k, {"mean": v["estimate"], "low": v["low"], "high": v["high"]}] for k, v in slopes.items()]}
    x = ctx.subset()[0]
    small = estimates(ctx, ctx.model(s["model"], seeds[0]), sigma, ns[0], stream=2)
    arrays = {"estimates": saliency_rows(x, [small["sg"], small["clime"], refs[0]["sg"], refs[0]["clime"]],
                                         int(s.get("n_saliency", 3)))}
    saliency = [{"title": f"SmoothGrad and C-LIME at small n and at the reference n (seed {seeds[0]}; one colour scale)",
                 "file": "saliency_estimates.png", "key": "estimates",
                 "col_labels": ["input", f"SG n={ns[0]}", f"CLIME n={ns[0]}", f"SG n={n_ref}", f"CLIME n={n_ref}"]}]
    return {"tables": [slope_table, table], "curves": [curve], "scatters": [], "saliency": saliency,
            "saliency_arrays": arrays, "claims": claims(slopes, ref_gap, cells, s)}


def claims(slopes: dict, ref_gap: dict, cells: dict, s: dict) -> list[dict]:
    lo, hi = s.get("slope_range", [-0.7, -0.3])
    out = []
    for label in ("SG_n vs SG_ref", "CLIME_n vs CLIME_ref"):
        v = slopes[label]
        verdict = stats.verdict_within(v["low"], v["high"], lo, hi)
        why = {stats.REPRODUCED: f"the slope's interval lies inside [{lo}, {hi}]",
               stats.NOT_REPRODUCED: f"the slope's interval lies outside [{lo}, {hi}]",
               stats.INCONCLUSIVE: f"the slope's interval straddles an end of [{lo}, {hi}]"}[verdict]
        out.append(claim(f"{label} shrinks like n^-1/2", "Monte Carlo rate n^-1/2 (Agarwal et al., Thm. 1)",
                         f"log-log slope {fmt_interval(v)}", verdict, why))
    gap = slopes["SG_n vs CLIME_n"]
    verdict = stats.verdict_below(gap["low"], gap["high"], 0.0)
    first, last = cells["SG_n vs CLIME_n"][0], cells["SG_n vs CLIME_n"][-1]
    out.append(claim("The SmoothGrad / C-LIME gap shrinks as n grows (they converge to the same vector)",
                     "SG and C-LIME converge to the same explanation (Agarwal et al., Thm. 1)",
                     f"relative gap {fmt_interval(first)} at n={s['ns'][0]} -> {fmt_interval(last)} at n={s['ns'][-1]}, "
                     f"slope {fmt_interval(gap)}; {fmt_interval(ref_gap)} at n_ref={s['n_ref']}", verdict,
                     {stats.REPRODUCED: "the slope's interval lies below 0",
                      stats.NOT_REPRODUCED: "the slope's interval lies above 0: the gap grows",
                      stats.INCONCLUSIVE: "the slope's interval contains 0"}[verdict]))
    return out
