"""The layers of rxlit, enforced: nothing imports upward, and no two packages import each other.

Top to bottom: ``scripts/`` -> ``rxlit.app`` -> ``training | evaluation | analysis`` ->
``explain | metrics | data | models`` -> the leaf modules (``rng``, ``registry``, ``stats``, ...).
A package may import its own modules and anything in a lower layer; packages of the same layer may
import each other only without a cycle. Imports inside functions count: a lazy import is still a
dependency (it was how an import cycle used to be papered over).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rxlit"
LAYERS = [
    {"app"},
    {"training", "evaluation", "analysis"},
    {"explain", "metrics", "data", "models"},
    {"activations", "distributed", "console", "stats", "rng", "registry"},
]
LAYER_OF = {package: depth for depth, layer in enumerate(LAYERS) for package in layer}


def package_of(module: str) -> str | None:
    """``rxlit.metrics.bounds`` -> ``metrics``; ``rxlit`` itself (the public facade) -> None."""
    parts = module.split(".")
    return parts[1] if parts[0] == "rxlit" and len(parts) > 1 else None


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every rxlit module ``path`` imports, at any depth of the file (relative imports resolved)."""
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_in(source: str, module: str, is_package: bool = False) -> set[str]:
    """The rxlit modules (and ``module.name`` for every imported name) that ``source`` imports."""
    found = set()
    anchor = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "rxlit"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == "rxlit":
                found |= {base, *(f"{base}.{a.name}" for a in node.names)}
    return found


def package_edges() -> dict[tuple[str, str], list[str]]:
    """``(importer package, imported package) -> [importing module, ...]`` across packages."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        source = package_of(module_name(path))
        if source is None:
            continue
        for target in {package_of(m) for m in imports_of(path)} - {None, source}:
            edges.setdefault((source, target), []).append(module_name(path))
    return edges


def test_every_package_has_a_layer():
    packages = {package_of(module_name(p)) for p in SRC.rglob("*.py")} - {None}
    assert packages <= set(LAYER_OF), f"packages without a layer in LAYERS: {sorted(packages - set(LAYER_OF))}"


def test_nothing_imports_upward():
    upward = [f"{a} -> {b} (in {', '.join(mods)})" for (a, b), mods in package_edges().items()
              if LAYER_OF[b] < LAYER_OF[a]]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for a, b in package_edges():
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, node])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [])):
            pytest.fail("import cycle between packages: " + " -> ".join(cycle))


def test_the_checker_sees_lazy_and_relative_imports():
    """The checker itself: an import inside a function, and a relative one, are dependencies."""
    source = "from . import bounds\n\ndef f():\n    from rxlit.app.train import train\n"
    found = imports_in(source, "rxlit.metrics.x")
    assert {"rxlit.app.train", "rxlit.metrics.bounds"} <= found
    assert {package_of(m) for m in found} == {"app", "metrics"}
