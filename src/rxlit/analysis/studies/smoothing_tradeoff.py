"""``smoothing_tradeoff``: Tan & Tian (ICML 2023), Figures 4-6.

One standard model; a grid of smoothing scales applied to four methods: SmoothGrad (Gaussian
std sigma), UniGrad (uniform ``[-r, r]^d``, r = sigma), and LIME / KernelSHAP applied to the
Gaussian-smoothed model ``f_mu``. Per scale: the explanation local Lipschitz estimate (by default
with common random numbers, ``study.lipschitz.common_noise``: the smoothing noise is the same at x
and at its neighbours, so the estimate measures the smoothed explanation that Theorem 4.3 bounds
rather than the Monte Carlo noise of independent draws) and
Tan & Tian's faithfulness with its three similarities (``1/||phi - p||``, Pearson, Spearman),
and the faithfulness-maximising scale. The paper: Lipschitz falls monotonically with sigma
while faithfulness peaks at an intermediate sigma (about 0.01-0.05) -- the trade-off.
"""

from __future__ import annotations

import math

from rxlit.analysis.studies.common import cell, fmt, keyed_explain, mean, saliency_rows
from rxlit.analysis.study import register_study
from rxlit.explain.noise import tan_tian_samples as sample_count
from rxlit.metrics import local_lipschitz, tan_faithfulness
from rxlit.stats import argmax_point, spearman

SIMILARITIES = ("inverse_l2", "pearson", "spearman")


def variant_options(variant: dict, sigma: float) -> tuple[str, dict]:
    """The method and options of one variant at one smoothing scale (``n`` capped by ``n_max``)."""
    n = min(sample_count(sigma), int(variant.get("n_max", 10**9)))
    if variant["kind"] == "smoothgrad":
        return "smoothgrad", {"sigma": sigma, "n": n}
    if variant["kind"] == "unigrad":
        return "unigrad", {"r": sigma, "n": n}
    return "smoothed", {"base": variant["kind"], "base_options": variant.get("base_options") or {},
                        "kernel": "gaussian", "sigma": sigma, "n": n}


def sweep(ctx, model, variant: dict, sigmas: list[float]) -> dict:
    s = ctx.study
    x, y, _ = ctx.subset()
    keyed = ctx.keyed()
    points = []
    for sigma in sigmas:
        method, options = variant_options(variant, sigma)
        lip = local_lipschitz(model, x, y, method, **s["lipschitz"], method_options=options, **keyed)
        phi = keyed_explain(ctx, model, method, options)
        faith = {sim: tan_faithfulness(model, x, y, attributions=phi, similarity=sim, **s["faithfulness"])
                 for sim in SIMILARITIES}
        points.append({"sigma": sigma, "n": options["n"], "lipschitz": lip, "faithfulness": faith, "phi": phi})
        print(f"[smoothing_tradeoff] {variant['label']} sigma {sigma}: lipschitz {mean(lip):.4g} "
              f"faithfulness {mean(faith['inverse_l2']):.4g}", flush=True)
    return {"label": variant["label"], "points": points}


def curve(title: str, y_label: str, file: str, sweeps: list[dict], value, log_y: bool) -> dict:
    series = []
    for sw in sweeps:
        cells = [cell(value(p)) for p in sw["points"]]
        series.append({"label": sw["label"], "x": [p["sigma"] for p in sw["points"]],
                       "mean": [c["mean"] for c in cells], "low": [c["low"] for c in cells],
                       "high": [c["high"] for c in cells]})
    return {"title": title, "x_label": "smoothing sigma (UniGrad: r)", "y_label": y_label, "file": file,
            "log_x": True, "log_y": log_y, "series": series}


def summary_rows(sweeps: list[dict]) -> tuple[list[list], dict]:
    rows, best = [], {}
    for sw in sweeps:
        sigmas = [p["sigma"] for p in sw["points"]]
        lips = [mean(p["lipschitz"]) for p in sw["points"]]
        rho = spearman(sigmas, lips)
        argmaxes = {sim: argmax_point(sigmas, [mean(p["faithfulness"][sim]) for p in sw["points"]])[0]
                    for sim in SIMILARITIES}
        best[sw["label"]] = {"rho_lipschitz": rho, "argmax": argmaxes, "lip_first": lips[0], "lip_last": lips[-1]}
        rows.append([sw["label"], rho, lips[0] / lips[-1] if lips[-1] else math.nan,
                     *[argmaxes[sim] for sim in SIMILARITIES]])
    return rows, best


def claims(best: dict, sigmas: list[float]) -> list[dict]:
    monotone = {k: v["rho_lipschitz"] for k, v in best.items()}
    ok = all(v <= -0.9 for v in monotone.values())
    out = [{
        "claim": "Smoothing more (larger sigma) lowers the explanation Lipschitz monotonically",
        "paper": "Lipschitz decreases monotonically with sigma (Figs. 4-6)",
        "measured": "Spearman(sigma, Lipschitz): " + ", ".join(f"{k} {fmt(v, 2)}" for k, v in monotone.items()),
        "reproduced": ok,
        "why": "every variant's Lipschitz falls with sigma (rank correlation <= -0.9)" if ok else
               "not monotone for " + ", ".join(k for k, v in monotone.items() if v > -0.9)
               + ": with few smoothing samples (n capped for the CPU budget) the Monte Carlo error of the "
                 "smoothed explanation adds to the estimate (it is largest for the smoothed LIME/KernelSHAP: 10 "
                 "smoothing samples of a 50-sample fit each)",
    }]
    ends = (sigmas[0], sigmas[-1])
    for label, v in best.items():
        peak = v["argmax"]["inverse_l2"]
        interior = peak not in ends
        out.append({
            "claim": f"{label}: faithfulness (1/||phi - p||) peaks at an intermediate sigma, then falls",
            "paper": "faithfulness-maximising sigma about 0.01-0.05 (CIFAR-10), lower on both sides",
            "measured": f"argmax sigma {fmt(peak)} (Pearson {fmt(v['argmax']['pearson'])}, Spearman "
                        f"{fmt(v['argmax']['spearman'])}) on the grid {fmt(sigmas[0])}-{fmt(sigmas[-1])}",
            "reproduced": interior,
            "why": ("an interior maximum, at a larger sigma than the paper's: digits images are 8x8 (CIFAR-10: 32x32) with strokes "
                    "1-2 pixels wide, so the model's gradient varies on a coarser scale"
                    if peak > 0.05 else "an interior maximum, in the paper's range") if interior else
                   "the maximum is at the end of the grid: the smoothed LIME/KernelSHAP estimates here use only "
                   "10 smoothing samples of a 50-sample LIME/SHAP run each; a likely cause is that their Monte Carlo "
                   "error, not the smoothing, dominates the faithfulness at every sigma (the paper uses far more samples)",
        })
    return out


@register_study("smoothing_tradeoff")
def run(ctx) -> dict:
    s = ctx.study
    model = ctx.model(s["model"])
    sigmas = [float(v) for v in s["sigmas"]]
    sweeps = [sweep(ctx, model, variant, sigmas) for variant in s["variants"]]
    rows, best = summary_rows(sweeps)
    curves = [curve("Explanation local Lipschitz vs smoothing", "explanation local Lipschitz",
                    "lipschitz_vs_sigma.png", sweeps, lambda p: p["lipschitz"], True)]
    for sim in SIMILARITIES:
        curves.append(curve(f"Faithfulness ({sim}) vs smoothing", f"faithfulness, {sim}",
                            f"faithfulness_{sim}_vs_sigma.png", sweeps, lambda p, sim=sim: p["faithfulness"][sim],
                            sim == "inverse_l2"))
    per_sigma = {"title": "Per sigma: n samples, explanation Lipschitz, faithfulness (inverse_l2) (mean, 95% CI)",
                 "columns": ["variant", "sigma", "n", "Lipschitz", *[f"faithfulness {sim}" for sim in SIMILARITIES]],
                 "rows": [[sw["label"], p["sigma"], p["n"], cell(p["lipschitz"]),
                           *[cell(p["faithfulness"][sim]) for sim in SIMILARITIES]]
                          for sw in sweeps for p in sw["points"]]}
    summary = {"title": "Trade-off summary: Spearman(sigma, Lipschitz), Lipschitz ratio first/last sigma, "
                        "faithfulness-maximising sigma per similarity",
               "columns": ["variant", "rho(sigma, Lipschitz)", "Lipschitz ratio", *[f"argmax {s_}" for s_ in SIMILARITIES]],
               "rows": rows}
    x = ctx.subset()[0]
    first = sweeps[0]
    arrays = {"sweep": saliency_rows(x, [p["phi"] for p in first["points"]], int(s.get("n_saliency", 3)))}
    saliency = [{"title": f"{first['label']} as sigma grows", "file": "saliency_sigma.png", "key": "sweep",
                 "col_labels": ["input", *[f"sigma {p['sigma']}" for p in first["points"]]]}]
    return {"tables": [summary, per_sigma], "curves": curves, "scatters": [], "saliency": saliency,
            "saliency_arrays": arrays, "claims": claims(best, sigmas)}
