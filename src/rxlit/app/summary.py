"""The summary of a run: printed on the console at the end, and kept as ``summary.md`` in its folder."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from rxlit.evaluation.keys import is_evaluation_key

# Logs and CI captures are not terminals: rich would squeeze the tables into 80 columns.
_WIDTH = 120


def summary_tables(report: dict) -> list[Table]:
    """The main metrics table, then the explanation tables of the last evaluation."""
    table = Table(show_lines=False)
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right")
    explained = {}
    for section in ("fit", "test"):
        for key, value in report.get(section, {}).items():
            if is_evaluation_key(key):  # shown as a methods x metrics table after the main one
                explained[key] = value
            else:
                table.add_row(key, f"{value:.4f}")
    tables = [table]
    if explained:
        from rxlit.evaluation.tables import rich_tables

        tables += rich_tables(explained, title="explanations (last evaluation)")
    return tables


def status_line(report: dict) -> str:
    line = f"status: {report.get('status', '?')}"
    if report.get("epochs") is not None:
        line += f", {report['epochs']} epochs, step {report.get('global_step')}"
    if report.get("wall_time_s") is not None:
        line += f", {report['wall_time_s']} s"
    return line


def folders_line(report: dict) -> str:
    return f"checkpoints: {report.get('checkpoint_dir')}   outputs: {report.get('output_dir')}"


def print_summary(report: dict) -> None:
    console = Console()
    if not console.is_terminal:
        console = Console(width=_WIDTH)
    console.rule(f"rxlit run {report.get('run_name', '')}")
    for table in summary_tables(report):
        console.print(table)
    console.print(folders_line(report))


def markdown_table(table: Table) -> str:
    """A rich table as a GitHub markdown table (title as a heading)."""
    columns = table.columns
    rows = zip(*(list(column.cells) for column in columns))
    lines = [f"### {table.title}", ""] if table.title else []
    lines += ["| " + " | ".join(str(c.header) for c in columns) + " |", "|---" * len(columns) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_summary(report: dict, path: str | Path) -> None:
    """``summary.md``: the console summary, plus the run's status and, for a failed run, its error."""
    parts = [f"# rxlit run {report.get('run_name', '')}", "", status_line(report), ""]
    if report.get("error"):
        parts += [f"error: `{report['error'].splitlines()[0][:500]}`", ""]
    if report.get("note"):
        parts += [report["note"], ""]
    if report.get("fit") or report.get("test"):
        parts += [markdown_table(t) for t in summary_tables(report)]
    parts += [folders_line(report), ""]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(parts))
