"""Each study end to end on tiny settings: results, report, plots and a claims section."""

from __future__ import annotations

import re

import pytest
from study_helpers import run_tiny


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
def test_free_lunch_tiny(tmp_path):
    results, report = run_tiny("free_lunch", tmp_path)
    text = check_report(results, report, 3)
    assert set(results["models"]) == {"standard", "pgd_eps0.1", "spectral"}
    assert "![lipschitz_scatter.png](lipschitz_scatter.png)" in text
    assert (report.parent / "saliency_standard.png").is_file()
    # model rank correlations are proper correlations
    rho = {row[0]: row[1] for row in results["tables"][3]["rows"]}
    assert set(rho) == {"grad", "smoothgrad", "lime"}
    assert all(-1 <= v <= 1 for v in rho.values())
    # a second run reuses the checkpoints by run name instead of training again
    again, _ = run_tiny("free_lunch", tmp_path)
    assert all(info["reused"] for info in again["models"].values())
    assert again["tables"][1] == results["tables"][1]   # same keyed noise, same numbers
