"""The docs' tables of methods and metrics agree with what each plug-in declared at registration
(names, options and defaults, units, randomness, direction): a new option or a changed default
that the docs do not show fails here."""

from __future__ import annotations

import re
from pathlib import Path

from rxlit.explain import list_methods
from rxlit.metrics import list_metrics

DOCS = Path(__file__).resolve().parents[1] / "docs"
ROW = re.compile(r"^\| `([a-z_]+)` \| (.*)$")


def table_rows(path: Path, header: str) -> dict[str, list[str]]:
    """``name -> cells`` of every row of the tables whose header line starts with ``header``."""
    rows, inside = {}, False
    for line in path.read_text().splitlines():
        if line.startswith(header):
            inside = True
        elif inside and (match := ROW.match(line)):
            rows[match.group(1)] = [c.strip() for c in match.group(2).rstrip("|").split(" | ")]
        elif inside and not line.startswith("|"):
            inside = False
    return rows


def documented_options(cell: str) -> dict[str, str]:
    return dict(re.findall(r"`([a-z_]+)=([^`]+)`", cell))


def shown(default) -> str:
    return f'"{default}"' if isinstance(default, str) else str(default)


def test_methods_table_shows_every_method_as_declared():
    rows = table_rows(DOCS / "explain.md", "| method | options (defaults) | declared |")
    methods = list_methods()
    assert sorted(rows) == sorted(methods)
    for name, info in methods.items():
        options, declared = rows[name][0], rows[name][1]
        assert documented_options(options) == {k: shown(v) for k, v in info["options"].items()}, name
        units = "base's" if info["units"] == "base" else info["units"]
        assert declared.split(", ")[0] == units, name
        assert ("stochastic" in declared) == info["stochastic"], name
        assert ("needs" in declared) == (info["needs"] is not None), name


def test_metrics_tables_show_every_metric_with_its_direction():
    rows = table_rows(DOCS / "metrics.md", "| metric | better |")
    metrics = list_metrics()
    assert sorted(rows) == sorted(metrics)
    for name, info in metrics.items():
        assert rows[name][0] == ("higher" if info["higher_is_better"] else "lower"), name
