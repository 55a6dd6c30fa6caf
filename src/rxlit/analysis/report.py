"""``results.json`` of a study -> ``reports/<name>/report.md`` with tables, PNG plots and claims.

The report is generic: a study's results list its tables (cells are numbers, strings or
``{"mean", "low", "high"}`` intervals), curves (mean with a confidence band against a swept
parameter), scatters, saliency grids (arrays in ``saliency.npz``) and claims
(``claim``, ``paper``, ``measured``, ``verdict`` -- reproduced, not reproduced or inconclusive,
decided by a confidence interval -- and ``why``).
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
    """One line of points per series; the first series' points are named, with labels placed so
    that they do not overlap; the legend sits outside the axes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for series in scatter["series"]:
        ax.plot(series["x"], series["y"], marker="o", ls=":", label=series["label"])
    if scatter.get("log"):
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(scatter["x_label"])
    ax.set_ylabel(scatter["y_label"])
    ax.set_title(scatter["title"], fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.margins(0.12)
    fig.tight_layout()
    first = scatter["series"][0]
    place_labels(fig, ax, list(zip(first.get("names", []), first["x"], first["y"], strict=False)))
    fig.savefig(path, dpi=90)
    plt.close(fig)


# Offsets (points) tried in turn for a point's label: right, above, left, below, then further out.
_OFFSETS = [(4, 3), (4, -9), (-4, 3), (-4, -9), (0, 8), (0, -13), (10, 12), (10, -17), (-10, 12), (-10, -17),
            (16, 0), (-16, 0), (4, 20), (4, -25)]


def place_labels(fig, ax, points: list[tuple[str, float, float]]) -> list:
    """Annotate points with names whose boxes overlap neither each other nor any plotted marker:
    each label takes the first offset of :data:`_OFFSETS` whose box is free (greedy; the last one
    when none is)."""
    from matplotlib.transforms import Bbox

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    markers = [xy for line in ax.get_lines() for xy in ax.transData.transform(line.get_xydata())]
    taken = [Bbox.from_extents(mx - 3, my - 3, mx + 3, my + 3) for mx, my in markers]
    texts = []
    for name, x, y in points:
        for i, (dx, dy) in enumerate(_OFFSETS):
            ha = "left" if dx >= 0 else "right"
            text = ax.annotate(name, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=6, ha=ha)
            box = text.get_window_extent(renderer).expanded(1.05, 1.1)
            if i == len(_OFFSETS) - 1 or not any(box.overlaps(other) for other in taken):
                taken.append(box)
                texts.append(text)
                break
            text.remove()
    return texts


def plot_saliency(grid: np.ndarray, col_labels: list[str], title: str, path: Path,
                  vmax: list[float] | None = None) -> dict:
    """Rows are examples; column 0 the input (gray), the others attributions on a signed colour scale
    (red +, blue -) shared by every row of a column, ``[-vmax, vmax]`` (default: one scale for
    the whole grid), with a colour bar under each column. Returns ``{"clims": [(lo, hi) per image],
    "colorbars": count}`` for checks."""
    plt = _pyplot()
    rows, cols = grid.shape[:2]
    if vmax is None:
        vmax = [float(np.abs(grid[:, 1:]).max()) or 1.0] * (cols - 1)
    fig, axes = plt.subplots(rows, cols, figsize=(1.25 * cols, 1.25 * rows + 0.9), squeeze=False)
    drawn = {"clims": [], "colorbars": 0}
    for c in range(cols):
        image = None
        for r in range(rows):
            ax = axes[r][c]
            if c == 0:
                ax.imshow(grid[r, c], cmap="gray", vmin=0, vmax=1)
            else:
                scale = vmax[c - 1] or 1.0
                image = ax.imshow(grid[r, c], cmap="bwr", vmin=-scale, vmax=scale)
                drawn["clims"].append((c, *image.get_clim()))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(col_labels[c], fontsize=6)
        if image is not None:
            bar = fig.colorbar(image, ax=list(axes[:, c]), orientation="horizontal", fraction=0.08, pad=0.04)
            bar.ax.tick_params(labelsize=5)
            bar.ax.locator_params(nbins=3)
            drawn["colorbars"] += 1
    fig.suptitle(title, fontsize=7)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return drawn


VERDICT_LABELS = {"reproduced": "**reproduced**", "not reproduced": "**not reproduced**", "inconclusive": "inconclusive"}


def verdict_of(claim: dict) -> str:
    """A claim's verdict (results written before verdicts had ``reproduced``: True/False/None)."""
    if "verdict" in claim:
        return claim["verdict"]
    return {True: "reproduced", False: "not reproduced"}.get(claim.get("reproduced"), "inconclusive")


def claims_section(claims: list[dict]) -> str:
    claims = [{**c, "verdict": verdict_of(c)} for c in claims]
    counts = {v: sum(1 for c in claims if c["verdict"] == v) for v in VERDICT_LABELS}
    lines = ["## Claims", "",
             f"{counts['reproduced']} of {len(claims)} claims reproduced, {counts['not reproduced']} not reproduced, "
             f"{counts['inconclusive']} inconclusive (decided by 95% intervals over examples and seeds; an interval "
             "that contains the threshold decides nothing).", "",
             "| claim | paper | this run (95% interval) | verdict |", "|---|---|---|---|"]
    for c in claims:
        lines.append(f"| {escape(c['claim'])} | {escape(c['paper'])} | {escape(c['measured'])} | "
                     f"{VERDICT_LABELS[c['verdict']]} |")
    lines.append("")
    for i, c in enumerate(claims, 1):
        lines.append(f"{i}. **{c['verdict'].capitalize()}**: {c['claim']}. {c['why']}.")
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
            plot_saliency(arrays[grid["key"]], grid["col_labels"], grid["title"], out / grid["file"], grid.get("vmax"))
            files.append(grid["file"])
    return files


def models_section(results: dict) -> str:
    lines = ["## Models", "", "| model / seed | run name | trained here | train time (s) | training overrides |",
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

    from rxlit.analysis.study import load_studies

    fn = load_studies().get(name)
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
    for verdict in VERDICT_LABELS:
        run.summary[f"claims_{verdict.replace(' ', '_')}"] = sum(1 for c in claims if verdict_of(c) == verdict)
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
