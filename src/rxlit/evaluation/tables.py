"""Tables of evaluation results: nested JSON, markdown and rich console tables.

Keys follow the logged names: ``xai/<metric>/<method>`` and ``model/<metric>``.
"""

from __future__ import annotations

import math

from rxlit.evaluation.keys import is_evaluation_number, is_model_key, split_key

FIELDS = ("mean", "ci_low", "ci_high", "n")


def nested(summaries: dict[str, dict]) -> dict:
    """``{"xai": {metric: {method: {mean, ci_low, ci_high, n}}}, "model": {metric: {...}}}``."""
    out: dict = {"xai": {}, "model": {}}
    for key, summary in summaries.items():
        parts = split_key(key)
        if parts is None:
            continue
        kind, metric, method = parts
        values = {k: summary[k] for k in FIELDS if k in summary}
        if kind == "xai":
            out["xai"].setdefault(metric, {})[method] = values
        else:
            out["model"][metric] = values
    return out


def matrix(values: dict[str, float]) -> tuple[list[str], list[str], dict[tuple[str, str], float]]:
    """Methods (rows), metrics (columns) and ``{(method, metric): value}`` of the ``xai/`` keys."""
    methods: dict[str, None] = {}
    metrics: dict[str, None] = {}
    cells = {}
    for key, value in values.items():
        parts = split_key(key)
        if parts is None or parts[0] != "xai":
            continue
        _, metric, method = parts
        methods[method], metrics[metric] = None, None
        cells[(method, metric)] = value
    return list(methods), list(metrics), cells


def fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"


def fmt_ci(summary: dict) -> str:
    text = fmt(summary["mean"])
    if not math.isnan(summary.get("ci_low", math.nan)):
        text += f" [{fmt(summary['ci_low'])}, {fmt(summary['ci_high'])}]"
    return text


def markdown(summaries: dict[str, dict], title: str = "") -> str:
    """Methods x metrics (mean [95% CI]) and the model metrics, as GitHub markdown."""
    methods, metrics, cells = matrix(summaries)
    lines = [f"## {title}", ""] if title else []
    if methods:
        lines += ["| method | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
        for method in methods:
            row = [fmt_ci(cells[(method, m)]) if (method, m) in cells else "-" for m in metrics]
            lines.append(f"| {method} | " + " | ".join(row) + " |")
        lines.append("")
    model = {k: v for k, v in summaries.items() if is_model_key(k)}
    if model:
        lines += ["| model metric | mean [95% CI] | n |", "|---|---|---|"]
        lines += [f"| {split_key(key)[1]} | {fmt_ci(v)} | {v.get('n', '-')} |" for key, v in model.items()]
        lines.append("")
    return "\n".join(lines)


def rich_tables(values: dict[str, float], title: str = "explanations") -> list:
    """Rich tables of logged means: methods x metrics, then the model/ and xai/time values."""
    from rich.table import Table

    tables = []
    methods, metrics, cells = matrix(values)
    if methods:
        table = Table(title=title)
        table.add_column("method")
        for metric in metrics:
            table.add_column(metric, justify="right")
        for method in methods:
            table.add_row(method, *[fmt(cells.get((method, m))) for m in metrics])
        tables.append(table)
    other = {k: v for k, v in values.items() if is_model_key(k) or is_evaluation_number(k)}
    if other:
        table = Table(title="model robustness and evaluation cost")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in other.items():
            table.add_row(key, fmt(value))
        tables.append(table)
    return tables
