"""Each study end to end on tiny settings with the full protocol (seeds, common draws, intervals):
results, report, plots and a claims section with verdicts."""

from __future__ import annotations

import re

import pytest
from study_helpers import run_tiny

from rxlit.stats import VERDICTS


@pytest.fixture(scope="module")
def shared_ckpt(tmp_path_factory):
    return tmp_path_factory.mktemp("ckpt")


def intervals(results: dict):
    """Every interval cell of every table."""
    for table in results["tables"]:
        for row in table["rows"]:
            yield from (c for c in row if isinstance(c, dict) and "low" in c)


def check_report(results: dict, report, n_claims: int) -> str:
    text = report.read_text()
    assert "## Claims" in text
    assert len(results["claims"]) == n_claims
    for claim in results["claims"]:
        assert claim["verdict"] in VERDICTS
        assert claim["measured"] and claim["paper"] and claim["why"]
        assert claim["claim"] in text
    # the protocol: several seeds per model, and every interval brackets its estimate
    assert len(results["settings"]["seeds"]) >= 2
    assert all(key.endswith(("/s0", "/s1")) for key in results["models"])
    cells = list(intervals(results))
    assert cells and all(c["low"] <= c["mean"] + 1e-9 and c["mean"] <= c["high"] + 1e-9 for c in cells
                         if c["low"] == c["low"])  # NaN cells (undefined correlations) are skipped
    # every plot the report links exists and is a PNG
    for png in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (report.parent / png).read_bytes()[:4] == b"\x89PNG"
    assert "python scripts/study.py experiment=" + results["study"] in text
    return text


@pytest.mark.slow
def test_free_lunch_tiny(tmp_path, shared_ckpt):
    results, report = run_tiny("free_lunch", tmp_path, shared_ckpt)
    text = check_report(results, report, 3)
    assert set(results["models"]) == {f"{k}/s{s}" for k in ("standard", "pgd_eps0.1", "spectral") for s in (0, 1)}
    assert results["settings"]["lipschitz"]["draws"] == "common"
    assert "![lipschitz_scatter.png](lipschitz_scatter.png)" in text
    assert (report.parent / "saliency_standard.png").is_file()
    # model rank correlations are proper correlations with intervals
    rank = next(t for t in results["tables"] if t["title"].startswith("Spearman"))
    assert {row[0] for row in rank["rows"]} == {"grad", "smoothgrad", "lime"}
    assert all(-1 <= row[1]["mean"] <= 1 for row in rank["rows"] if row[1]["mean"] == row[1]["mean"])
    # Grad's bound is the identity: only SmoothGrad and LIME are checked against Theorem 4.1
    bound = next(t for t in results["tables"] if t["title"].startswith("Theorem 4.1"))
    assert [row[0] for row in bound["rows"]] == ["smoothgrad", "lime"]
    # a second run reuses the checkpoints by run name instead of training again
    again, _ = run_tiny("free_lunch", tmp_path, shared_ckpt)
    assert all(info["reused"] for info in again["models"].values())
    assert again["tables"][1] == results["tables"][1]   # same keyed noise, same numbers


@pytest.mark.slow
def test_smoothing_tradeoff_tiny(tmp_path, shared_ckpt):
    results, report = run_tiny("smoothing_tradeoff", tmp_path, shared_ckpt)
    text = check_report(results, report, 3)   # monotone Lipschitz + one faithfulness peak per variant
    assert "lipschitz_vs_sigma.png" in text and "faithfulness_2_vs_sigma.png" in text
    summary = results["tables"][0]["rows"]
    assert [row[0] for row in summary] == ["SmoothGrad", "smoothed LIME"]
    assert all(row[3] in (0.03, 0.1, 0.3) for row in summary)  # argmax sigma is on the grid
    curve = results["curves"][0]["series"][0]
    assert all(lo <= m <= hi for lo, m, hi in zip(curve["low"], curve["mean"], curve["high"], strict=True))


@pytest.mark.slow
def test_sg_clime_convergence_tiny(tmp_path, shared_ckpt):
    results, report = run_tiny("sg_clime_convergence", tmp_path, shared_ckpt)
    check_report(results, report, 3)
    slopes = {row[0]: row[1] for row in results["tables"][0]["rows"]}
    assert set(slopes) == {"SG_n vs CLIME_n", "SG_n vs SG_ref", "CLIME_n vs CLIME_ref"}
    # SmoothGrad's Monte Carlo error falls with n even on tiny settings
    assert slopes["SG_n vs SG_ref"]["mean"] < 0


@pytest.mark.slow
def test_infidelity_table_tiny(tmp_path, shared_ckpt):
    results, report = run_tiny("infidelity_table", tmp_path, shared_ckpt)
    check_report(results, report, 5)
    rows = {row[0]: row for row in results["tables"][0]["rows"]}
    assert set(rows) == {"grad", "grad_sg", "noisy_baseline", "square"}
    assert all(cell["mean"] >= 0 for row in rows.values() for cell in row[1:])  # norms and squared errors
    assert results["settings"]["sensitivity"]["draws"] == "common"
