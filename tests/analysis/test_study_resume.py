"""A study that stops loses no finished evaluation: each is saved when done, and ``study.resume``
reuses the saved ones (same settings and code) and computes the rest, to the same results."""

from __future__ import annotations

import json

import pytest

import rxlit.analysis.studies.sg_clime_convergence as sg_clime
from rxlit.app.study import compose_train, evaluation_fingerprint, run_study, study_run_dir

STUDY = "sg_clime_convergence"  # one model ("standard") x 2 seeds on its tiny settings: one evaluation per seed


def run(tmp_path, stamp: str, extra=()) -> dict:
    overrides = [f"experiment={STUDY}", "debug=study", "logger=none", f"paths.checkpoints={tmp_path / 'ckpt'}",
                 f"study.output_root={tmp_path / 'studies'}", *extra]
    cfg = compose_train(overrides)
    path = run_study(cfg, overrides, study_run_dir(cfg, stamp))
    return json.loads(path.read_text())


def counting(monkeypatch, fail_at: int | None = None) -> list:
    """Count calls of the study's per-seed evaluation; raise at call ``fail_at`` (1-based)."""
    calls, real = [], sg_clime.distances

    def distances(*args, **kwargs):
        calls.append(1)
        if len(calls) == fail_at:
            raise KeyboardInterrupt("stopped by the test")
        return real(*args, **kwargs)

    monkeypatch.setattr(sg_clime, "distances", distances)
    return calls


def comparable(results: dict) -> str:
    return json.dumps({k: results[k] for k in ("tables", "curves", "claims")}, sort_keys=True)


def test_a_stopped_study_resumes_from_its_finished_evaluations(tmp_path, monkeypatch, capsys):
    whole = run(tmp_path, "2026-01-01_00-00-00")
    assert whole["reused_evaluations"] == [] and whole["resumed_from"] is None
    calls = counting(monkeypatch, fail_at=2)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "2026-01-02_00-00-00")
    stopped = study_run_dir(compose_train([f"experiment={STUDY}", f"study.output_root={tmp_path / 'studies'}"]),
                            "2026-01-02_00-00-00")
    assert sorted(p.name for p in (stopped / "evaluations").iterdir()) == ["s0.pt"]  # seed 0 was finished
    assert f"study.resume={stopped}" in capsys.readouterr().out  # the stop names the fix

    calls.clear()
    resumed = run(tmp_path, "2026-01-03_00-00-00", ["study.resume=last"])
    assert len(calls) == 1  # only seed 1 evaluated again
    assert resumed["reused_evaluations"] == ["s0"] and resumed["resumed_from"] == str(stopped)
    assert comparable(resumed) == comparable(whole)  # the same numbers as the run that never stopped


def test_the_fingerprint_follows_settings_and_overrides_not_where_the_study_writes():
    study = {"name": STUDY, "seeds": [0, 1], "output_root": "a", "resume": None}
    base = evaluation_fingerprint(study, ["model=mlp"])
    assert evaluation_fingerprint({**study, "output_root": "b", "resume": "last"}, ["model=mlp", "study.resume=last"]) == base
    assert evaluation_fingerprint({**study, "seeds": [0]}, ["model=mlp"]) != base
    assert evaluation_fingerprint(study, ["model=small_cnn"]) != base


def test_a_resume_folder_without_evaluations_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="study.resume=last, or drop study.resume"):
        run(tmp_path, "2026-01-01_00-00-00", [f"study.resume={tmp_path / 'nowhere'}"])
    with pytest.raises(FileNotFoundError, match="no earlier run of this study"):
        run(tmp_path, "2026-01-01_00-00-00", ["study.resume=last"])
