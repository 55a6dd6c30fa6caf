"""``infidelity_table``: Yeh et al. (NeurIPS 2019), Table 1.

``SENS_max`` (normalised, uniform samples in the L-inf ball) and ``INFD`` (with the optimal
rescaling) under both perturbation laws -- noisy baseline and square removal -- for Grad, IG,
Guided Backprop and their smoothed versions, KernelSHAP, and the infidelity-optimal
explanations of each law ("Noisy Baseline", "Square"), on standard models of several seeds.
Smoothing here is Yeh et al.'s explanation smoothing ``g^k(x) = (1/n) sum_j phi(x + z_j)``,
``z_j ~ N(0, sigma^2 I)`` (for Grad it is SmoothGrad), evaluated with the same ``z_j`` at x and at
the points ``SENS_max`` compares. Every claim is decided by a 95% interval of a paired difference
(bootstrap over examples and seeds).
"""

from __future__ import annotations

from rxlit import rng, stats
from rxlit.analysis.studies.common import (
    cell,
    claim,
    difference,
    fmt,
    fmt_interval,
    interval,
    mean,
    saliency_rows,
)
from rxlit.analysis.study import register_study
from rxlit.explain import MethodInfo, declare, explain, method_info
from rxlit.metrics import infidelity, max_sensitivity
from rxlit.rng import ExampleRNG


def smoothed_explanation(base: str, sigma: float, n: int, base_options: dict | None = None):
    """Yeh et al.'s smoothing of an explanation, ``g^k(x) = (1/n) sum_j phi(x + z_j)``,
    ``z_j ~ N(0, sigma^2 I)``: declared stochastic, so the sensitivity metrics evaluate it with the
    same ``z_j`` at x and at its neighbours (the smoothed explanation, not its Monte Carlo error)."""
    base_options = dict(base_options or {})

    def method(model, x, target, generator=None):
        B = x.shape[0]
        z = sigma * rng.normal(generator, B, (n, *x.shape[1:]), device=x.device, dtype=x.dtype)
        rows = (x.unsqueeze(1) + z).flatten(0, 1)
        phi = explain(model, rows, target.repeat_interleave(n), base, **base_options)
        return phi.view(B, n, *x.shape[1:]).mean(1)

    method.__name__ = f"{base}_sg"
    return declare(method, MethodInfo(stochastic=True, units=method_info(base).units))


def build_methods(s: dict) -> dict:
    """Table rows: name -> method (a registered name or a callable) and its options."""
    out = {}
    for name, spec in s["methods"].items():
        spec = dict(spec or {})
        if "smooth" in spec:
            base = spec.pop("smooth")
            out[name] = (smoothed_explanation(base, float(s["sg_sigma"]), int(s["sg_n"]), spec), {})
        else:
            out[name] = (spec.pop("method", name), spec)
    return out


def evaluate(ctx, model, methods: dict, keep_phi: bool) -> tuple[dict, list]:
    """Per method: SENS_max (common draws) and INFD under every law, per example."""
    s = ctx.study
    x, y, index = ctx.subset()
    keyed = ctx.keyed()
    values, phis = {}, []
    for name, (method, options) in methods.items():
        phi = explain(model, x, y, method, generator=ExampleRNG(ctx.seed, index), **options).detach()
        sens = max_sensitivity(model, x, y, method, **s["sensitivity"], method_options=options, **keyed)
        infd = {law: infidelity(model, x, y, attributions=phi, perturbation=law, **(opts or {}), **keyed)
                for law, opts in s["laws"].items()}
        values[name] = {"sens": sens, **infd}
        if keep_phi:
            phis.append(phi)
        print(f"[infidelity_table] {name}: SENS_max {mean(sens):.4g} " +
              " ".join(f"INFD[{law}] {mean(v):.4g}" for law, v in infd.items()), flush=True)
    return values, phis


@register_study("infidelity_table")
def run(ctx) -> dict:
    s = ctx.study
    methods = build_methods(s)
    per_seed, phis = [], []
    seeds = ctx.seeds_of(s["model"])
    for i, seed in enumerate(seeds):
        values, shown = ctx.evaluated(f"s{seed}", lambda seed=seed, i=i: evaluate(
            ctx, ctx.model(s["model"], seed), methods, keep_phi=i == 0))
        per_seed.append(values)
        phis = phis or shown
    laws = s["laws"]
    table = {"title": f"SENS_max (radius {s['sensitivity']['radius']}, common draws) and INFD per perturbation law "
                      f"(mean, 95% interval over examples and {len(seeds)} seeds)",
             "columns": ["method", "SENS_max", *[f"INFD {law}" for law in laws]],
             "rows": [[name, *[cell([v[name][k] for v in per_seed]) for k in ("sens", *laws)]] for name in methods],
             "note": "Smoothed rows are Yeh et al.'s g^k = mean of the base explanation at "
                     f"{s['sg_n']} Gaussian neighbours (sigma {s['sg_sigma']}), with the same neighbours at x and at "
                     "the points SENS_max compares. Square's explanation is x_p g_p / |x_p|^2 per pixel (the "
                     "minimum-norm optimum of the square law), so near-black pixels get very large weights and a "
                     "neighbour that lifts a black pixel changes it a lot: hence its large SENS_max. Noisy Baseline is "
                     "the least-squares fit of f(x) - f(x - I) on its sampled perturbations."}
    x = ctx.subset()[0]
    arrays = {"methods": saliency_rows(x, phis, int(s.get("n_saliency", 3)))}
    vmax = [float(abs(arrays["methods"][:, c]).max()) for c in range(1, len(methods) + 1)]
    saliency = [{"title": f"Explanations of the infidelity table (seed {seeds[0]}; one colour scale per column)",
                 "file": "saliency_methods.png", "key": "methods", "col_labels": ["input", *methods], "vmax": vmax}]
    return {"tables": [table], "curves": [], "scatters": [], "saliency": saliency, "saliency_arrays": arrays,
            "claims": claims(per_seed, s)}


def lower(per_seed: list[dict], a: str, b: str, key: str) -> dict:
    """Interval of ``mean(key of a) - mean(key of b)`` (paired over examples and seeds)."""
    return interval([[v[a][key], v[b][key]] for v in per_seed], difference)


def claims(per_seed: list[dict], s: dict) -> list[dict]:
    names = per_seed[0]
    pairs = [(base, sg) for base, sg in s["smoothing_pairs"].items() if base in names and sg in names]
    out = []
    for key, label in [("sens", "SENS_max"), *[(law, f"INFD ({law})") for law in s["laws"]]]:
        diffs = {base: lower(per_seed, base, sg, key) for base, sg in pairs}
        verdicts = {base: stats.verdict_above(d["low"], d["high"]) for base, d in diffs.items()}
        verdict = stats.combine(list(verdicts.values()))
        out.append(claim(f"Smoothing an explanation lowers {label}",
                         "every SG version is lower than its base (Table 1)",
                         ", ".join(f"{b} - {sg}: {fmt_interval(diffs[b])}" for b, sg in pairs), verdict,
                         verdict_reason(verdicts, "the decrease")))
    for law, optimal in s["optimal"].items():
        if optimal not in names or law not in s["laws"]:
            continue
        diffs = {name: lower(per_seed, name, optimal, law) for name in names if name != optimal}
        verdicts = {name: stats.verdict_above(d["low"], d["high"]) for name, d in diffs.items()}
        verdict = stats.combine(list(verdicts.values()))
        closest = min(diffs, key=lambda k: diffs[k]["estimate"])
        out.append(claim(f"The infidelity-optimal explanation '{optimal}' has the lowest INFD ({law})",
                         "Noisy Baseline and Square minimise their own law's INFD (Table 1)",
                         f"{optimal} {fmt(mean([v[optimal][law] for v in per_seed]))}; closest other: {closest}, "
                         f"difference {fmt_interval(diffs[closest])}", verdict,
                         verdict_reason(verdicts, f"the excess over {optimal}")))
    return out


def verdict_reason(verdicts: dict, what: str) -> str:
    if all(v == stats.REPRODUCED for v in verdicts.values()):
        return f"{what} has an interval above 0 for every row"
    against = [k for k, v in verdicts.items() if v == stats.NOT_REPRODUCED]
    if against:
        return f"{what} has an interval below 0 for " + ", ".join(against)
    return f"{what}'s interval contains 0 for " + ", ".join(k for k, v in verdicts.items() if v != stats.REPRODUCED)
