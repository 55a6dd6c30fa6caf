"""The console summary table printed at the end of a run."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_summary(report: dict) -> None:
    table = Table(title=f"rxlit run {report.get('run_name', '')}", show_lines=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for section in ("fit", "test"):
        for key, value in report.get(section, {}).items():
            table.add_row(key, f"{value:.4f}")
    console = Console()
    console.print(table)
    console.print(f"checkpoints: {report.get('checkpoint_dir')}   outputs: {report.get('output_dir')}")
