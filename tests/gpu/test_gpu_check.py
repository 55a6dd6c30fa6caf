"""benchmarks/gpu_check.py on a CPU: the refusal without CUDA, and one section of its quick mode."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def gpu_check(monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    yield module
    torch.set_num_threads(threads)


def test_the_checked_methods_are_the_default_explain_config(gpu_check):
    default = yaml.safe_load((REPO / "configs" / "explain" / "default.yaml").read_text())
    assert set(gpu_check.DEFAULT_METHODS) == set(default["methods"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_it_says_how_to_run_on_a_cpu(gpu_check, capsys):
    assert gpu_check.main(["--device", "cuda"]) == 2
    assert "--device cpu --quick" in capsys.readouterr().err


def test_quick_explanation_section_writes_its_table(gpu_check, tmp_path):
    args = ["--device", "cpu", "--quick", "--only", "explain", "--explain-model", "tiny_cnn", "--out", str(tmp_path)]
    assert gpu_check.main(args) == 0
    table = (tmp_path / "gpu_check.md").read_text()
    assert "## explanation throughput" in table and "--quick" in table
    data = json.loads((tmp_path / "gpu_check.json").read_text())["explanation throughput"]
    assert set(data) == set(gpu_check.DEFAULT_METHODS)
    for method in gpu_check.DEFAULT_METHODS:
        assert f"| {method} |" in table
        assert data[method]["examples_per_s"] > 0 and data[method]["to_bound"][1] > 0
