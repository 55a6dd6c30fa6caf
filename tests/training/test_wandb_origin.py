"""scripts/eval.py records which training run, checkpoint and W&B artifact it evaluated."""

from __future__ import annotations

from rxlit_configs import compose

from rxlit.analysis.wandb_offline import find_offline_runs, read_offline_run
from rxlit.app.evaluate import evaluate_checkpoint
from rxlit.app.train import train


def test_eval_records_the_checkpoint_and_artifact_it_evaluated(make_cfg, tmp_path):
    report = train(make_cfg(["logger=wandb"]))
    ((trained_run),) = find_offline_runs(tmp_path / "out")
    run_id = trained_run.name.rsplit("-", 1)[-1]
    assert report["wandb_artifact"] == f"model-{run_id}"
    out = tmp_path / "eval"
    payload = evaluate_checkpoint(compose("eval", [f"ckpt_path={report['best_checkpoint']}", f"output_dir={out}",
                                                   "logger=wandb", "explain.n_examples=4",
                                                   "~explain.methods", "+explain.methods={grad: {}}"]))
    origin = payload["trained"]
    assert origin["wandb_run"] == run_id and origin["artifact"] == f"model-{run_id}:best"
    assert origin["epoch"] == 0 and origin["path"].endswith("best.ckpt")
    ((eval_run),) = find_offline_runs(out)
    config = read_offline_run(eval_run, expect={"xai/local_lipschitz/grad"})["config"]
    assert config["evaluated_checkpoint"]["artifact"] == f"model-{run_id}:best"
