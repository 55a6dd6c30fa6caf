"""Each study end to end on tiny settings: results, report, plots and a claims section."""

from __future__ import annotations

import re

import pytest
from study_helpers import run_tiny


@pytest.fixture(scope="module")
def shared_ckpt(tmp_path_factory):
    return tmp_path_factory.mktemp("ckpt")


def check_report(results: dict, report, n_claims: int) -> str:
    text = report.read_text()
    assert "## Claims" in text
    assert len(results["claims"]) == n_claims
    for claim in results["claims"]:
        assert claim["reproduced"] in (True, False, None)
        assert claim["measured"] and claim["paper"] and claim["why"]
        assert claim["claim"] in text
    # every plot the report links exists and is a PNG
    for png in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (report.parent / png).read_bytes()[:4] == b"\x89PNG"
    assert "python scripts/study.py experiment=" + results["study"] in text
    return text


@pytest.mark.slow
def test_free_lunch_tiny(tmp_path, shared_ckpt):
    results, report = run_tiny("free_lunch", tmp_path, shared_ckpt)
    text = check_report(results, report, 3)
    assert set(results["models"]) == {"standard", "pgd_eps0.1", "spectral"}
    assert "![lipschitz_scatter.png](lipschitz_scatter.png)" in text
    assert (report.parent / "saliency_standard.png").is_file()
    # model rank correlations are proper correlations
    rho = {row[0]: row[1] for row in results["tables"][3]["rows"]}
    assert set(rho) == {"grad", "smoothgrad", "lime"}
    assert all(-1 <= v <= 1 for v in rho.values())
    # a second run reuses the checkpoints by run name instead of training again
    again, _ = run_tiny("free_lunch", tmp_path, shared_ckpt)
    assert all(info["reused"] for info in again["models"].values())
    assert again["tables"][1] == results["tables"][1]   # same keyed noise, same numbers


@pytest.mark.slow
def test_smoothing_tradeoff_tiny(tmp_path, shared_ckpt):
    results, report = run_tiny("smoothing_tradeoff", tmp_path, shared_ckpt)
    text = check_report(results, report, 3)   # monotone Lipschitz + one faithfulness peak per variant
    assert "lipschitz_vs_sigma.png" in text and "faithfulness_pearson_vs_sigma.png" in text
    summary = results["tables"][0]["rows"]
    assert [row[0] for row in summary] == ["SmoothGrad", "smoothed LIME"]
    assert all(row[3] in (0.03, 0.1, 0.3) for row in summary)  # argmax sigma is on the grid
    curve = results["curves"][0]["series"][0]
    assert all(lo <= m <= hi for lo, m, hi in zip(curve["low"], curve["mean"], curve["high"], strict=True))


@pytest.mark.slow
def test_sg_clime_convergence_tiny(tmp_path, shared_ckpt):
    results, report = run_tiny("sg_clime_convergence", tmp_path, shared_ckpt)
    check_report(results, report, 3)
    slopes = dict(results["tables"][0]["rows"])
    assert set(slopes) == {"SG_n vs CLIME_n", "SG_n vs SG_ref", "CLIME_n vs CLIME_ref"}
    # SmoothGrad's Monte Carlo error falls with n even on tiny settings
    assert slopes["SG_n vs SG_ref"] < 0


@pytest.mark.slow
def test_infidelity_table_tiny(tmp_path, shared_ckpt):
    results, report = run_tiny("infidelity_table", tmp_path, shared_ckpt)
    check_report(results, report, 5)
    rows = {row[0]: row for row in results["tables"][0]["rows"]}
    assert set(rows) == {"grad", "grad_sg", "noisy_baseline", "square"}
    assert all(cell["mean"] >= 0 for row in rows.values() for cell in row[1:])  # norms and squared errors
