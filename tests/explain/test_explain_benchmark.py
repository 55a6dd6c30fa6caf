"""The benchmark's quick mode (a smoke run of a few seconds): every method is timed and compared."""

import importlib.util
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "explain.py"


def test_quick_benchmark_runs_every_method(capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("explain_benchmark", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    try:
        rows = bench.main(["--quick"])
    finally:
        torch.set_num_threads(threads)
    names = [row["method"] for row in rows]
    assert names[:2] == ["grad", "grad_x_input"] and "lime" in names and "kernel_shap" in names
    for row in rows:
        assert row["ours_ex_s"] > 0 and row["to_bound"][1] > 0, row
    with_captum = {row["method"] for row in rows if "speedup_fastest" in row}
    assert {"grad", "integrated_gradients", "smoothgrad", "lime", "kernel_shap"} <= with_captum
    assert "targets" in capsys.readouterr().out
