"""The console summary table printed at the end of a run."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

# Keys of the explanation evaluation: shown as a methods x metrics table after the main one.
EXPLAIN_PREFIXES = ("xai/", "model/")


# Logs and CI captures are not terminals: rich would squeeze the tables into 80 columns.
_WIDTH = 120


def print_summary(report: dict) -> None:
    table = Table(show_lines=False)
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right")
    explained = {}
    for section in ("fit", "test"):
        for key, value in report.get(section, {}).items():
            if key.startswith(EXPLAIN_PREFIXES):
                explained[key] = value
            else:
                table.add_row(key, f"{value:.4f}")
    console = Console()
    if not console.is_terminal:
        console = Console(width=_WIDTH)
    console.rule(f"rxlit run {report.get('run_name', '')}")
    console.print(table)
    if explained:
        from rxlit.callbacks.tables import rich_tables

        for extra in rich_tables(explained, title="explanations (last evaluation)"):
            console.print(extra)
    console.print(f"checkpoints: {report.get('checkpoint_dir')}   outputs: {report.get('output_dir')}")
