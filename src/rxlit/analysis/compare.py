"""Many models side by side: ``scripts/compare.py <eval or run folders ...>``.

Reads each folder's evaluation (``metrics.json`` of ``scripts/eval.py`` / ``rxlit.evaluate``, or
the last ``xai/<split>_epochNNN.json`` of a ``train.py`` run) and writes, in one output folder:

* ``compare.md`` and ``compare.csv``: one table, a row per model: accuracy, robust accuracy, model
  local Lipschitz constant L and smoothness H, and per explanation method its local Lipschitz
  estimate and Tan & Tian faithfulness, each as mean [95% interval];
* the Spearman rank correlation (scipy) across the models between the model's L (and H) and
  each method's explanation Lipschitz estimate: Tan & Tian (ICML 2023, Sec. 6) find 1.0 across ten
  ResNet-18s of different robustness (0.95 for LIME);
* ``lipschitz_scatter.png``: explanation vs model Lipschitz, one point per model and method (their
  Figure 3, for the given models);
* the same table, correlations and plot in a W&B run (offline unless configured otherwise).

Accuracy intervals are Wilson score intervals (they stay inside [0, 1]); the others are the
evaluation's own intervals over examples.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rxlit.evaluation.keys import metric_key, split_key
from rxlit.stats import proportion_interval, spearman_test

ACCURACY = (metric_key("clean_accuracy"), metric_key("robust_accuracy"))
MODEL_COLUMNS = [("accuracy", metric_key("clean_accuracy")), ("robust accuracy", metric_key("robust_accuracy")),
                 ("model Lipschitz L", metric_key("model_local_lipschitz")), ("model smoothness H", metric_key("model_smoothness"))]
METHOD_METRICS = [("Lipschitz", "local_lipschitz"), ("faithfulness", "tan_faithfulness")]
Z95 = 1.959963984540054


@dataclass
class Entry:
    """One model's evaluation: ``summaries[key] = {mean, ci_low, ci_high, n}``."""

    label: str
    folder: str
    summaries: dict
    split: str
    n_examples: int | None


# ------------------------------------------------------------------------------------ reading
def _eval_label(payload: dict, folder: Path) -> str:
    model = (payload.get("model") or {}).get("name")
    if payload.get("weights"):
        return f"{model} {Path(payload['weights']).stem}" if model else Path(payload["weights"]).stem
    if payload.get("checkpoint"):
        return Path(payload["checkpoint"]).parent.name
    return model or folder.name


def _last_xai(folder: Path) -> Path | None:
    files = sorted((folder / "xai").glob("*_epoch*.json"), key=lambda p: int(p.stem.rsplit("epoch", 1)[1]))
    return files[-1] if files else None


def load_entry(folder: str | Path) -> Entry:
    """The evaluation in an eval folder (``metrics.json`` with ``summaries``) or a train.py run folder
    (``metrics.json`` + ``xai/*.json``, the last epoch)."""
    folder = Path(folder)
    metrics = folder / "metrics.json"
    payload = json.loads(metrics.read_text()) if metrics.is_file() else {}
    if "summaries" in payload:
        return Entry(_eval_label(payload, folder), str(folder), payload["summaries"], payload.get("split", ""),
                     payload.get("n_examples"))
    xai = _last_xai(folder)
    if xai is None:
        raise FileNotFoundError(f"{folder} holds no evaluation: expected metrics.json from scripts/eval.py, or a "
                                "train.py output folder with xai/<split>_epochNNN.json (train with explain=default)")
    saved = json.loads(xai.read_text())
    summaries = dict(saved["metrics"])
    test = payload.get("test") or {}
    if metric_key("clean_accuracy") not in summaries and "test/acc" in test:  # whole test split, no interval
        summaries[metric_key("clean_accuracy")] = {"mean": test["test/acc"], "ci_low": math.nan, "ci_high": math.nan,
                                             "n": None}
    n = next((s.get("n") for s in summaries.values() if isinstance(s, dict) and s.get("n")), None)
    return Entry(payload.get("run_name") or folder.name, str(folder), summaries, saved.get("split", ""), n)


def expand(folders) -> list[Path]:
    """The folders given, with a multirun folder (no metrics.json, numbered job folders) replaced by its jobs."""
    out = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder: pass eval output folders (outputs/eval/...) or "
                                    "train.py output folders")
        jobs = sorted((p.parent for p in folder.glob("*/metrics.json")), key=lambda p: p.name)
        out += [folder] if (folder / "metrics.json").is_file() or (folder / "xai").is_dir() or not jobs else jobs
    return out


def load_entries(folders) -> list[Entry]:
    entries = [load_entry(f) for f in expand(folders)]
    seen: dict[str, int] = {}
    for entry in entries:  # distinct labels: the same checkpoint name evaluated twice gets its folder
        seen[entry.label] = seen.get(entry.label, 0) + 1
    for entry in entries:
        if seen[entry.label] > 1:
            entry.label = f"{entry.label} ({Path(entry.folder).name})"
    return entries


# ------------------------------------------------------------------------------------ numbers
def wilson(p: float, n: int | None) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``p`` over ``n`` trials (NaNs when ``n`` is unknown)."""
    if not n or p is None or math.isnan(p):
        return math.nan, math.nan
    return proportion_interval(round(p * n), int(n), method="wilson")


def cell(summaries: dict, key: str) -> dict | None:
    """``{mean, low, high, n}`` of ``key`` (Wilson interval for accuracies), None if absent."""
    s = summaries.get(key)
    if s is None:
        return None
    mean, n = float(s["mean"]), s.get("n")
    low, high = wilson(mean, n) if key in ACCURACY else (s.get("ci_low", math.nan), s.get("ci_high", math.nan))
    return {"mean": mean, "low": float(low), "high": float(high), "n": n}


def methods_of(entries: list[Entry]) -> list[str]:
    """Methods with a local Lipschitz estimate, in order of first appearance."""
    found: dict[str, None] = {}
    for entry in entries:
        for key in entry.summaries:
            parts = split_key(key)
            if parts and parts[2] is not None and parts[1] in dict(METHOD_METRICS).values():
                found[parts[2]] = None
    return list(found)


def comparison_table(entries: list[Entry]) -> dict:
    """One row per model; columns: the model metrics, then Lipschitz and faithfulness per method."""
    methods = methods_of(entries)
    keys = [(title, key) for title, key in MODEL_COLUMNS]
    keys += [(f"{method} {title}", metric_key(metric, method)) for method in methods for title, metric in METHOD_METRICS]
    rows = [[entry.label] + [cell(entry.summaries, key) for _, key in keys] for entry in entries]
    return {"columns": ["model"] + [title for title, _ in keys], "keys": [key for _, key in keys], "rows": rows}


def rank_correlations(entries: list[Entry]) -> list[dict]:
    """Per method: Spearman's rho (and p) across models between the model's L (and H) and the
    method's explanation local Lipschitz estimate, over the models that have all three."""
    out = []
    for method in methods_of(entries):
        key = metric_key("local_lipschitz", method)
        have = [e for e in entries if key in e.summaries and metric_key("model_local_lipschitz") in e.summaries]
        expl = [e.summaries[key]["mean"] for e in have]
        lip = [e.summaries[metric_key("model_local_lipschitz")]["mean"] for e in have]
        rho_l, p_l = spearman_test(lip, expl)
        smooth = [e for e in have if metric_key("model_smoothness") in e.summaries]
        rho_h, p_h = spearman_test([e.summaries[metric_key("model_smoothness")]["mean"] for e in smooth],
                                   [e.summaries[key]["mean"] for e in smooth])
        out.append({"method": method, "n_models": len(have), "rho_L": rho_l, "p_L": p_l, "rho_H": rho_h, "p_H": p_h})
    return out


# ------------------------------------------------------------------------------------ writing
def fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def fmt_cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        text = fmt(value["mean"])
        if not math.isnan(value["low"]):
            text += f" [{fmt(value['low'])}, {fmt(value['high'])}]"
        return text
    return str(value).replace("|", "\\|")


def markdown(table: dict, correlations: list[dict], entries: list[Entry], plot: str | None) -> str:
    lines = ["# Model comparison", "",
             f"{len(entries)} models. Cells: mean [95% interval] over the evaluated examples (accuracies: Wilson "
             "interval). Lipschitz: local Lipschitz estimate (Tan & Tian 2023; lower is more robust); faithfulness: "
             "Tan & Tian faithfulness (`tan_faithfulness`, higher is more faithful).", "",
             "| " + " | ".join(table["columns"]) + " |", "|" + "---|" * len(table["columns"])]
    lines += ["| " + " | ".join(fmt_cell(c) for c in row) + " |" for row in table["rows"]]
    lines += ["", "## Rank correlation across models", "",
              "Spearman's rho between the model's local Lipschitz constant L (smoothness H) and each method's "
              "explanation local Lipschitz estimate (scipy.stats.spearmanr; needs at least 3 models). Tan & Tian "
              "report 1.0 over ten CIFAR-10 ResNet-18s (LIME 0.95).", "",
              "| method | models | rho (L) | p (L) | rho (H) | p (H) |", "|---|---|---|---|---|---|"]
    lines += [f"| {c['method']} | {c['n_models']} | {fmt(c['rho_L'])} | {fmt(c['p_L'])} | {fmt(c['rho_H'])} | "
              f"{fmt(c['p_H'])} |" for c in correlations]
    if plot:
        lines += ["", f"![explanation vs model Lipschitz]({plot})"]
    lines += ["", "## Sources", ""]
    lines += [f"- {e.label}: `{e.folder}` ({e.split} split, {fmt(e.n_examples)} examples)" for e in entries]
    return "\n".join(lines) + "\n"


def write_csv(table: dict, path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        header = ["model"]
        for title in table["columns"][1:]:
            header += [title, f"{title} low", f"{title} high"]
        writer.writerow(header)
        for row in table["rows"]:
            values = [row[0]]
            for c in row[1:]:
                values += [c["mean"], c["low"], c["high"]] if c else ["", "", ""]
            writer.writerow(values)


def plot_scatter(entries: list[Entry], path: Path) -> bool:
    """Explanation vs model local Lipschitz (log-log), a colour per method, a point per model, with the
    intervals as error bars: Tan & Tian's Figure 3 for these models. False when nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    drawn, all_x, all_y = False, [], []
    for method in methods_of(entries):
        key = metric_key("local_lipschitz", method)
        pts = [(cell(e.summaries, metric_key("model_local_lipschitz")), cell(e.summaries, key), e.label) for e in entries
               if key in e.summaries and metric_key("model_local_lipschitz") in e.summaries]
        if not pts:
            continue
        pts.sort(key=lambda p: p[0]["mean"])  # the dotted line joins models in order of L
        xs = np.array([p[0]["mean"] for p in pts])
        ys = np.array([p[1]["mean"] for p in pts])
        xerr = _errors(xs, [p[0] for p in pts])
        yerr = _errors(ys, [p[1] for p in pts])
        all_x += xs.tolist()
        all_y += ys.tolist()
        ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, marker="o", ms=5, ls=":", capsize=2, elinewidth=0.8, label=method)
        drawn = True
    if drawn:
        first = methods_of(entries)[0]
        for e in entries:
            if metric_key("local_lipschitz", first) in e.summaries and metric_key("model_local_lipschitz") in e.summaries:
                ax.annotate(e.label, (e.summaries[metric_key("model_local_lipschitz")]["mean"],
                                      e.summaries[metric_key("local_lipschitz", first)]["mean"]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
        _log_if_wide(ax, "x", all_x)
        _log_if_wide(ax, "y", all_y)
        ax.set_xlabel("model local Lipschitz L")
        ax.set_ylabel("explanation local Lipschitz")
        ax.set_title("explanation vs model robustness (Tan & Tian 2023, Fig. 3)", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def _log_if_wide(ax, axis: str, values: list[float]) -> None:
    """Log scale when the values span more than a decade (as in Tan & Tian's figure), linear otherwise
    (a log axis inside one decade has no labelled ticks)."""
    low, high = min(values), max(values)
    if low > 0 and high / low > 10:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def _errors(values: np.ndarray, cells: list[dict]) -> np.ndarray | None:
    low = np.array([c["low"] for c in cells], dtype=float)
    high = np.array([c["high"] for c in cells], dtype=float)
    if np.isnan(low).any() or np.isnan(high).any():
        return None
    return np.stack([np.clip(values - low, 0, None), np.clip(high - values, 0, None)])


def log_wandb(table: dict, correlations: list[dict], plot: Path | None, out: Path, mode: str) -> str | None:
    """The table, correlations and plot as one W&B run; returns its folder (offline) or None."""
    if mode == "disabled":
        return None
    import wandb

    run = wandb.init(project=os.environ.get("WANDB_PROJECT", "rxlit"), job_type="compare", dir=str(out),
                     name=f"compare-{len(table['rows'])}-models", mode=mode)
    try:
        rows = [[row[0]] + [fmt_cell(c) for c in row[1:]] for row in table["rows"]]
        run.log({"compare/table": wandb.Table(columns=table["columns"], data=rows)})
        run.log({"compare/rank_correlation": wandb.Table(
            columns=["method", "n_models", "rho_L", "p_L", "rho_H", "p_H"],
            data=[[c["method"], c["n_models"], c["rho_L"], c["p_L"], c["rho_H"], c["p_H"]] for c in correlations])})
        for c in correlations:
            run.summary[f"compare/rho_L/{c['method']}"] = c["rho_L"]
        if plot is not None:
            run.log({"compare/lipschitz_scatter": wandb.Image(str(plot))})
        return run.dir
    finally:
        run.finish()


def wandb_mode(requested: str = "auto") -> str:
    """``auto``: WANDB_MODE if set, else offline (``wandb sync`` uploads later). An explicit mode goes
    through the training runs' check, so ``online`` without credentials fails fast instead of prompting."""
    from rxlit.training.loggers import wandb_mode as checked_mode

    return os.environ.get("WANDB_MODE", "offline") if requested == "auto" else checked_mode(requested)


def compare(folders, out: str | Path, wandb: str = "auto") -> dict:
    """Write ``compare.md``, ``compare.csv``, ``compare.json`` and ``lipschitz_scatter.png`` into ``out``
    (and a W&B run); returns ``{"table", "correlations", "entries", "markdown"}``."""
    entries = load_entries(folders)
    if not entries:
        raise ValueError("no folders given: pass eval or train.py output folders")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = comparison_table(entries)
    correlations = rank_correlations(entries)
    plot = out / "lipschitz_scatter.png"
    has_plot = plot_scatter(entries, plot)
    text = markdown(table, correlations, entries, plot.name if has_plot else None)
    (out / "compare.md").write_text(text)
    write_csv(table, out / "compare.csv")
    payload = {"table": table, "correlations": correlations,
               "entries": [{"label": e.label, "folder": e.folder, "split": e.split, "n_examples": e.n_examples}
                           for e in entries]}
    (out / "compare.json").write_text(json.dumps(payload, indent=2, default=float))
    log_wandb(table, correlations, plot if has_plot else None, out, wandb_mode(wandb))
    return {**payload, "markdown": out / "compare.md"}
