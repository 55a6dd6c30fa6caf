"""``free_lunch``: Tan & Tian (ICML 2023), Table 1 and Figure 3.

Models of one backbone with different robustness (standard, PGD at several eps, TRADES,
gradient-norm and spectral regularisation, curvature), each trained with several seeds. For each
explanation method: the explanation local Lipschitz estimate (common random numbers: a sampled
method gets the same draws at x and at its neighbours, so the estimate is that of the explanation,
not of its Monte Carlo error), Tan & Tian's faithfulness (each method against the reference in its
own units; the paper's literal protocol beside it), the Spearman rank correlation between the
model's and the explanation's local Lipschitz across models, the ratio of the explanation
Lipschitz to its Theorem 4.1 bound at each example's local L and H, and the ratio to the certified
bound built on the model's global Lipschitz constant. Every claim is decided by a 95% interval
from a paired bootstrap over examples and seeds.
"""

from __future__ import annotations

import numpy as np

from rxlit import stats
from rxlit.analysis.studies.common import (
    FAITHFULNESS,
    cell,
    claim,
    faithfulness_variants,
    fmt,
    fmt_interval,
    interval,
    keyed_explain,
    mean,
    proportion_cell,
    ratio_of_means,
    saliency_rows,
)
from rxlit.analysis.study import register_study
from rxlit.metrics import (
    bound_ratios,
    certified_bound,
    clean_accuracy,
    global_lipschitz,
    local_lipschitz,
    model_local_lipschitz,
    model_smoothness,
    robust_accuracy,
)
from rxlit.metrics.robustness import method_generator


def lipschitz_values(model, x, y, index, s: dict, seed: int, epoch: int = 0) -> dict:
    """Per example: the model's local L and H, every method's explanation local Lipschitz (common
    draws) and its Theorem 4.1 bound ratio (:func:`rxlit.metrics.bound_ratios`, the function the
    evaluation callback and ``scripts/eval.py`` use, so the same model, examples and keys give the
    same ratios)."""
    keyed = {"seed": seed, "index": index, "epoch": epoch}
    methods = {m: dict(o or {}) for m, o in s["methods"].items()}
    L = model_local_lipschitz(model, x, y, **s["model_metric"], **keyed)
    H = model_smoothness(model, x, y, **s["model_metric"], **keyed)
    lips = {m: local_lipschitz(model, x, y, m, **s["lipschitz"], method_options=o, **keyed) for m, o in methods.items()}
    return {"L": L, "H": H, "lipschitz": lips, "bound_ratio": bound_ratios(lips, methods, x, L, H)}


def evaluate_model(ctx, key: str, seed: int) -> dict:
    s = ctx.study
    model = ctx.model(key, seed)
    x, y, index = ctx.subset()
    values = lipschitz_values(model, x, y, index, s, ctx.seed)
    attack = ctx.cfg.data.attack
    L_cert = global_lipschitz(model, tuple(x.shape[1:]))[y.cpu()]
    entry = {"L": values["L"], "H": values["H"], "L_cert": L_cert, "clean_acc": clean_accuracy(model, x, y),
             "robust_acc": robust_accuracy(model, x, y, eps=float(attack.eps), step=float(attack.step),
                                           steps=int(s.get("attack_steps", 10)), seed=ctx.seed),
             "methods": {}, "phis": [], "seed": seed}
    for method, options in s["methods"].items():
        options = dict(options or {})
        lip = values["lipschitz"][method]
        phi = keyed_explain(ctx, model, method, options)
        faith = faithfulness_variants(ctx, model, x, y, phi, method, options)
        certified = certified_bound(method, options, x, L_cert, method_generator(ctx.seed, index))
        entry["methods"][method] = {"lipschitz": lip, "faithfulness": faith,
                                    "bound_ratio": values["bound_ratio"].get(method),
                                    "certified_ratio": None if certified is None else lip.cpu().double() / certified}
        entry["phis"].append(phi)
        print(f"[free_lunch] {key} s{seed} {method}: lipschitz {mean(lip):.4g} faithfulness "
              f"{mean(faith['1/L2']):.4g}", flush=True)
    return entry


def seeds_of(per_model: dict, key: str, get) -> list:
    """One value per seed: ``get(entry)`` for every seed's entry of model ``key``."""
    return [get(e) for e in per_model[key]]


def model_table(ctx, per_model: dict) -> dict:
    rows = []
    for key, entries in per_model.items():
        infos = [ctx.models_info.get(f"{key}/s{e['seed']}", {}) for e in entries]
        test_acc = [i.get("test", {}).get("test/acc") for i in infos]
        rows.append([key, mean([v for v in test_acc if v is not None]),
                     proportion_cell([e["clean_acc"] for e in entries]),
                     proportion_cell([e["robust_acc"] for e in entries]),
                     cell([e["L"] for e in entries]), cell([e["H"] for e in entries]),
                     cell([e["L_cert"] for e in entries])])
    return {"title": f"Models (seeds: {len(ctx.seeds)} each, less any that diverged): accuracy, robustness, local Lipschitz L and smoothness "
                     "H, certified global L (mean, 95% interval; accuracies: Wilson)",
            "columns": ["model", "test acc (mean of seeds)", "subset acc", "subset PGD acc", "L (local)",
                        "H (local)", "L (certified)"], "rows": rows}


def metric_table(per_model: dict, methods, get, title: str) -> dict:
    rows = [[m] + [cell(seeds_of(per_model, k, lambda e, m=m: get(e["methods"][m]))) for k in per_model]
            for m in methods]
    return {"title": title, "columns": ["method", *per_model], "rows": rows}


def ratio_table(per_model: dict, methods, field: str, title: str, note: str) -> dict:
    rows = []
    for m in methods:
        if per_model[next(iter(per_model))][0]["methods"][m][field] is None:
            continue
        row = [m]
        for key in per_model:
            ratios = seeds_of(per_model, key, lambda e, m=m: e["methods"][m][field])
            above = float(np.mean(np.concatenate([np.asarray(r.cpu()) for r in ratios]) > 1))
            row.append(f"{fmt(mean(ratios))}, max {fmt(max(float(r.max()) for r in ratios))} ({fmt(above, 2)} > 1)")
        rows.append(row)
    return {"title": title, "columns": ["method", *per_model], "rows": rows, "note": note}


def paired(per_model: dict, keys=None) -> dict:
    """The entries of ``keys`` (default: every model) restricted to the seeds they all have, in seed
    order: paired statistics resample seeds, so a seed whose training diverged in one model leaves
    every model's paired comparison (it stays in that model's own rows)."""
    keys = list(per_model) if keys is None else list(keys)
    seeds = sorted(set.intersection(*({e["seed"] for e in per_model[k]} for k in keys)))
    return {k: sorted((e for e in per_model[k] if e["seed"] in seeds), key=lambda e: e["seed"]) for k in keys}


def rank_correlations(per_model: dict, methods) -> dict:
    """Spearman(model L, explanation Lipschitz) across models, per method, with its interval."""
    per_model = paired(per_model)
    keys = list(per_model)
    M = len(keys)
    out = {}
    for m in methods:
        per_seed = [[*[per_model[k][i]["L"] for k in keys], *[per_model[k][i]["methods"][m]["lipschitz"] for k in keys]]
                    for i in range(len(per_model[keys[0]]))]
        out[m] = interval(per_seed, stats.rowwise(lambda row: stats.spearman(row[:M], row[M:])))
    return out


def lower_claim(per_model: dict, methods, standard: str, robust: str) -> dict:
    per_model = paired(per_model, [standard, robust])
    ratios = {m: interval([[a["methods"][m]["lipschitz"], b["methods"][m]["lipschitz"]]
                           for a, b in zip(per_model[standard], per_model[robust], strict=True)], ratio_of_means)
              for m in methods}
    verdicts = {m: stats.verdict_above(r["low"], r["high"], 1.0) for m, r in ratios.items()}
    verdict = stats.combine(list(verdicts.values()))
    model_ratio = interval([[a["L"], b["L"]] for a, b in zip(per_model[standard], per_model[robust], strict=True)],
                           ratio_of_means)
    big = [m for m, r in ratios.items() if r["low"] >= 10]
    why = {stats.REPRODUCED: "every method's ratio interval lies above 1",
           stats.NOT_REPRODUCED: "the interval lies below 1 for " + ", ".join(
               m for m, v in verdicts.items() if v == stats.NOT_REPRODUCED),
           stats.INCONCLUSIVE: "the interval contains 1 for " + ", ".join(
               m for m, v in verdicts.items() if v == stats.INCONCLUSIVE)}[verdict]
    why += (f"; at least 10x for {', '.join(big)}" if big else
            f"; the factor is far smaller than the paper's 10-80x: on 8x8 digits the robust model's own local "
            f"Lipschitz is only {fmt_interval(model_ratio)}x lower, and explanation Lipschitz follows it")
    return claim(f"Robust models have lower explanation Lipschitz than the non-robust one for every method "
                 f"({standard} / {robust}, ratio of means)",
                 "10-80x lower for every method (CIFAR-10, ResNet18, PGD eps 8/255)",
                 ", ".join(f"{m} {fmt_interval(r)}x" for m, r in ratios.items()), verdict, why)


def rank_claim(rho: dict, n_models: int, threshold: float) -> dict:
    verdicts = {m: stats.verdict_above(r["low"], r["high"], threshold) for m, r in rho.items()}
    verdict = stats.combine(list(verdicts.values()))
    why = {stats.REPRODUCED: f"every method's interval lies above {threshold}",
           stats.NOT_REPRODUCED: f"the interval lies below {threshold} for " + ", ".join(
               m for m, v in verdicts.items() if v == stats.NOT_REPRODUCED),
           stats.INCONCLUSIVE: f"the interval contains {threshold} for " + ", ".join(
               m for m, v in verdicts.items() if v == stats.INCONCLUSIVE)}[verdict]
    return claim(f"Model and explanation Lipschitz are rank-correlated across {n_models} models (Spearman > {threshold})",
                 "rank correlation 1.0 for every method (LIME 0.95) across 10 ResNet18s",
                 ", ".join(f"{m} {fmt_interval(r, 2)}" for m, r in rho.items()), verdict, why)


def bound_claim(per_model: dict, methods, tolerance: float) -> dict:
    per_model = paired(per_model)
    fractions = {}
    for m in methods:
        if per_model[next(iter(per_model))][0]["methods"][m]["bound_ratio"] is None:
            continue
        per_seed = [[per_model[k][i]["methods"][m]["bound_ratio"] > 1 for k in per_model]
                    for i in range(len(next(iter(per_model.values()))))]
        fractions[m] = interval(per_seed, lambda means: means.mean(axis=1))
    verdicts = {m: stats.verdict_below(f["low"], f["high"], tolerance) for m, f in fractions.items()}
    verdict = stats.combine(list(verdicts.values()))
    why = (f"the share of examples above the bound has an interval below {tolerance} for every method" if
           verdict == stats.REPRODUCED else
           "not decided for " + ", ".join(m for m, v in verdicts.items() if v != stats.REPRODUCED)
           + ": L and H here are local estimates (the max over a few neighbours), lower estimates of the constants "
             "the theorem needs, so an example above its bound does not contradict the theorem")
    return claim("Theorem 4.1: the explanation Lipschitz lies below its bound from the model's local L and H "
                 "(Grad's bound is H, measured by the same estimator: an identity, not counted)",
                 "upper bounds (Theorem 4.1); the paper checks the trend, not the ratio",
                 ", ".join(f"{m} {fmt_interval(f, 2)}" for m, f in fractions.items())
                 + " (share of examples above the bound, all models and seeds)", verdict, why)


def saliency(ctx, per_model: dict, methods) -> tuple[list[dict], dict]:
    """Grids of the standard and the robust model (first seed), one shared colour scale per method."""
    x = ctx.subset()[0]
    n_show = int(ctx.study.get("n_saliency", 3))
    keys = [ctx.study["standard_model"], ctx.study["robust_model"]]
    arrays = {k: saliency_rows(x, per_model[k][0]["phis"], n_show) for k in keys}
    vmax = [float(max(np.abs(arrays[k][:, c]).max() for k in keys)) for c in range(1, len(methods) + 1)]
    specs = [{"title": f"Saliency: {k} (seed {per_model[k][0]['seed']}); colour scale shared per method across models",
              "file": f"saliency_{k}.png", "key": k, "col_labels": ["input", *methods], "vmax": vmax} for k in keys]
    return specs, arrays


@register_study("free_lunch")
def run(ctx) -> dict:
    s = ctx.study
    methods = list(s["methods"])
    per_model = {key: [ctx.evaluated(f"{key}-s{seed}", lambda key=key, seed=seed: evaluate_model(ctx, key, seed))
                       for seed in ctx.seeds_of(key, required=False)] for key in s["models"]}
    per_model = {key: entries for key, entries in per_model.items() if entries}  # every seed diverged: reported
    missing = [k for k in (s["standard_model"], s["robust_model"]) if k not in per_model]
    if missing:
        raise RuntimeError(f"every seed of {missing} diverged (results.json: diverged); the claims compare them")
    rho = rank_correlations(per_model, methods)
    model_L = [mean([e["L"] for e in per_model[k]]) for k in per_model]
    scatter = {"title": "Model vs explanation local Lipschitz (one point per model, mean of seeds)",
               "file": "lipschitz_scatter.png", "x_label": "model local Lipschitz L",
               "y_label": "explanation local Lipschitz", "log": True,
               "series": [{"label": f"{m} (rho {fmt(rho[m]['estimate'], 2)})", "x": model_L,
                           "y": [mean([e["methods"][m]["lipschitz"] for e in per_model[k]]) for k in per_model],
                           "names": list(per_model)} for m in methods]}
    grids, arrays = saliency(ctx, per_model, methods)
    rank_table = {"title": "Spearman rank correlation, model vs explanation Lipschitz across models (95% interval)",
                  "columns": ["method", "rho"],
                  "rows": [[m, {"mean": r["estimate"], "low": r["low"], "high": r["high"]}] for m, r in rho.items()]}
    faith_tables = [metric_table(per_model, methods, lambda e, label=label: e["faithfulness"][label],
                                 f"Faithfulness, {label} ({'each method in its own units' if 'paper' not in label else 'every method against the slope p'}; mean, 95% interval)")
                    for label in FAITHFULNESS]
    tables = [model_table(ctx, per_model),
              metric_table(per_model, methods, lambda e: e["lipschitz"],
                           "Explanation local Lipschitz, common draws (mean, 95% interval)"),
              *faith_tables, rank_table,
              ratio_table(per_model, methods, "bound_ratio",
                          "Theorem 4.1: explanation Lipschitz / bound at the local L and H: mean, max (share > 1)",
                          "Grad is not listed: its bound is H, which is measured as Grad's own local Lipschitz "
                          "estimate (a ratio of 1 by construction)."),
              ratio_table(per_model, methods, "certified_ratio",
                          "Certified: explanation Lipschitz / certified bound from the global L: mean, max (share > 1)",
                          "SmoothGrad: sqrt(2/pi) L / sigma (its expectation); LIME (constant kernel), KernelSHAP: "
                          "the estimator with its draws fixed (docs/metrics.md).")]
    out = {"tables": tables, "scatters": [scatter], "curves": [], "saliency": grids, "saliency_arrays": arrays,
           "claims": [lower_claim(per_model, methods, s["standard_model"], s["robust_model"]),
                      rank_claim(rho, len(per_model), float(s.get("min_rank_correlation", 0.8))),
                      bound_claim(per_model, methods, float(s.get("bound_tolerance", 0.05)))]}
    return out
