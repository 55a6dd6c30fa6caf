"""``results.json`` of a study -> ``reports/<name>/report.md`` with tables, PNG plots and claims.

The report is generic: a study's results list its tables (cells are numbers, strings or
``{"mean", "low", "high"}`` intervals), curves (mean with a confidence band against a swept
parameter), scatters, saliency grids (arrays in ``saliency.npz``) and claims
(``claim``, ``paper``, ``measured``, ``reproduced``, ``why``).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np

from rxlit.analysis.studies.common import fmt


def find_results(target: str | Path, outputs: str | Path = "outputs/studies") -> Path:
    """``results.json`` of a run folder, or of the newest run of a study named ``target``."""
    path = Path(target)
    if path.is_file() and path.name == "results.json":
        return path
    if (path / "results.json").is_file():
        return path / "results.json"
    runs = sorted(Path(outputs).glob(f"{target}*/*/results.json"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise FileNotFoundError(f"no results.json in {target!r} nor any run of a study named {target!r} under "
                                f"{outputs}/; run `python scripts/study.py experiment={target}` first")
    return runs[-1]


def escape(text: str) -> str:
    """A markdown table cell: ``|`` (as in ``||phi - p||``) would end the cell."""
    return str(text).replace("|", "\\|")


def format_cell(value) -> str:
    if isinstance(value, dict) and "mean" in value:
        return f"{fmt(value['mean'])} [{fmt(value['low'])}, {fmt(value['high'])}]"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return fmt(float(value))
    return "" if value is None else escape(value)


def markdown_table(table: dict) -> str:
    lines = [f"**{table['title']}**", "", "| " + " | ".join(table["columns"]) + " |",
             "|" + "---|" * len(table["columns"])]
    lines += ["| " + " | ".join(format_cell(c) for c in row) + " |" for row in table["rows"]]
    if table.get("note"):
        lines += ["", table["note"]]
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curve(curve: dict, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for series in curve["series"]:
        xs = np.asarray(series["x"], dtype=float)
        ax.plot(xs, series["mean"], marker="o", ms=3, label=series["label"])
        if series.get("low") is not None:
            ax.fill_between(xs, series["low"], series["high"], alpha=0.2)
    ax.set_xscale("log" if curve.get("log_x") else "linear")
    if curve.get("log_y"):
        ax.set_yscale("log")
    _label_and_save(plt, fig, ax, curve, path, legend_size=7)


def _label_and_save(plt, fig, ax, spec: dict, path: Path, legend_size: int) -> None:
    ax.set_xlabel(spec["x_label"])
    ax.set_ylabel(spec["y_label"])
    ax.set_title(spec["title"], fontsize=9)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_scatter(scatter: dict, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    for series in scatter["series"]:
        ax.plot(series["x"], series["y"], marker="o", ls=":", label=series["label"])
    first = scatter["series"][0]
    for name, x, y in zip(first.get("names", []), first["x"], first["y"], strict=False):
        ax.annotate(name, (x, y), fontsize=6)
    if scatter.get("log"):
        ax.set_xscale("log")
        ax.set_yscale("log")
    _label_and_save(plt, fig, ax, scatter, path, legend_size=6)


def plot_saliency(grid: np.ndarray, col_labels: list[str], title: str, path: Path) -> None:
    """Rows are examples; column 0 the input (gray), the others attributions (red +, blue -)."""
    plt = _pyplot()
    rows, cols = grid.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows + 0.4), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r][c]
            img = grid[r, c]
            if c == 0:
                ax.imshow(img, cmap="gray")
            else:
                m = float(np.abs(img).max()) or 1.0
                ax.imshow(img, cmap="bwr", vmin=-m, vmax=m)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(col_labels[c], fontsize=6)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def claims_section(claims: list[dict]) -> str:
    n_yes = sum(1 for c in claims if c["reproduced"] is True)
    lines = ["## Claims", "", f"{n_yes} of {len(claims)} claims reproduced in this run.", "",
             "| claim | paper | this run | reproduced |", "|---|---|---|---|"]
    for c in claims:
        verdict = {True: "**yes**", False: "**no**", None: "n/a"}[c["reproduced"]]
        lines.append(f"| {escape(c['claim'])} | {escape(c['paper'])} | {escape(c['measured'])} | {verdict} |")
    lines.append("")
    for i, c in enumerate(claims, 1):
        verdict = {True: "Reproduced", False: "Not reproduced", None: "Not decided"}[c["reproduced"]]
        lines.append(f"{i}. **{verdict}**: {c['claim']}. {c['why']}.")
    return "\n".join(lines)


def write_plots(results: dict, run_dir: Path, out: Path) -> list[str]:
    files = []
    for curve in results.get("curves", []):
        plot_curve(curve, out / curve["file"])
        files.append(curve["file"])
    for scatter in results.get("scatters", []):
        plot_scatter(scatter, out / scatter["file"])
        files.append(scatter["file"])
    arrays = np.load(run_dir / "saliency.npz") if (run_dir / "saliency.npz").is_file() else {}
    for grid in results.get("saliency", []):
        if grid["key"] in arrays:
            plot_saliency(arrays[grid["key"]], grid["col_labels"], grid["title"], out / grid["file"])
            files.append(grid["file"])
    return files


def models_section(results: dict) -> str:
    lines = ["## Models", "", "| model | run name | trained here | train time (s) | training overrides |",
             "|---|---|---|---|---|"]
    for key, info in results.get("models", {}).items():
        extra = [o for o in info.get("overrides", []) if not o.startswith("experiment=")]
        lines.append(f"| {key} | `{info.get('run_name')}` | {'no (reused)' if info.get('reused') else 'yes'} | "
                     f"{fmt(info.get('train_time_s') or math.nan)} | `{' '.join(extra)}` |")
    return "\n".join(lines)


def study_summary(name: str) -> str:
    """The study module's docstring (for results written before summaries were stored)."""
    import inspect
    import sys

    from rxlit.analysis import studies  # noqa: F401  (registers the studies)
    from rxlit.analysis.study import STUDIES

    fn = STUDIES.get(name)
    return inspect.getdoc(sys.modules[fn.__module__]) if fn else ""


def render(results: dict, run_dir: Path, plots: list[str]) -> str:
    name = results["study"]
    parts = [f"# Study `{name}` on {results['data']} / {results['model_name']}", "",
             results.get("summary") or study_summary(name), "",
             f"Run folder: `{run_dir}`; wall time {fmt(results['wall_time_s'])} s on {results['device']} "
             f"(torch {results['torch']}).", "", claims_section(results.get("claims", [])), "", "## Results", ""]
    for table in results.get("tables", []):
        parts += [markdown_table(table), ""]
    parts += ["## Plots", ""]
    parts += [f"![{p}]({p})" for p in plots]
    parts += ["", models_section(results), "", "## Commands", "",
              "Regenerate this study and its report:", "", "```bash", results["command"],
              f"python scripts/report.py {run_dir}", "```", "",
              "Each model was trained (or reused, by run name) with:", "", "```bash"]
    parts += [info.get("command", "") for info in results.get("models", {}).values() if info.get("command")]
    parts += ["```", "", "## Settings", "", "```json", json.dumps(results["settings"], indent=1), "```", "",
              "<details><summary>Resolved config of the study run</summary>", "", "```json",
              json.dumps(results["config"], indent=1, default=str), "```", "", "</details>", ""]
    return "\n".join(parts)


def log_wandb(results: dict, out: Path, plots: list[str], run_dir: Path) -> None:
    """Log the tables, plots and claims to W&B (offline unless logged in)."""
    import wandb

    logger = (results.get("config") or {}).get("logger") or {}
    mode = logger.get("mode", "offline")
    run = wandb.init(project=logger.get("project", "rxlit"), job_type="report", dir=str(run_dir),
                     name=f"report-{results['study']}", mode="offline" if mode == "auto" else mode,
                     config=results["settings"])
    for i, table in enumerate(results.get("tables", [])):
        rows = [[format_cell(c) for c in row] for row in table["rows"]]
        run.log({f"table_{i}": wandb.Table(columns=table["columns"], data=rows)})
    run.log({p.removesuffix(".png"): wandb.Image(str(out / p)) for p in plots})
    claims = results.get("claims", [])
    run.summary["claims_reproduced"] = sum(1 for c in claims if c["reproduced"] is True)
    run.summary["claims_total"] = len(claims)
    run.finish()


def write_report(target: str | Path, reports: str | Path = "reports", name: str | None = None,
                 wandb: bool | None = None) -> Path:
    """Write ``<reports>/<name>/report.md`` (name: the study's) and its PNGs; return the report path."""
    results_path = find_results(target)
    run_dir = results_path.parent
    results = json.loads(results_path.read_text())
    out = Path(reports) / (name or results["study"])
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    plots = write_plots(results, run_dir, out)
    report = out / "report.md"
    report.write_text(render(results, run_dir, plots))
    use_wandb = wandb if wandb is not None else ((results.get("config") or {}).get("logger") or {}).get("name") == "wandb"
    if use_wandb:
        log_wandb(results, out, plots, run_dir)
    return report
