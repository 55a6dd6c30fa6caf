"""The per-epoch evaluation in a 2-epoch run on a device, checked against ``scripts/eval.py`` on the CPU.

A run with ``trainer=gpu`` (``trainer=cpu`` for the CPU case) evaluates the explanation matrix after
each epoch; ``evaluate_checkpoint`` (the code behind ``scripts/eval.py``) then evaluates the run's
``last.ckpt`` with ``device=cpu`` and with ``device=<the run's device>``. All three must agree: the
callback's values are a function of the weights, the subset, the seed and the epoch key only, not of
the device, the training precision or the memory layout. Under ``bf16-mixed`` the weights stay float32
and the evaluation must not run under autocast (a bf16 evaluation would differ by ~1e-2 relative).
Tolerance: float32 on two devices, 1e-3 relative (:data:`gpu_helpers.TOLERANCE`).
"""

from __future__ import annotations

import json

import pytest
import torch
from gpu_helpers import NEEDS_CUDA, TOLERANCE
from rxlit_configs import compose

from rxlit.app.evaluate import evaluate_checkpoint
from rxlit.app.train import train

RTOL = TOLERANCE[torch.float32]["rtol"]
# Synthetic 3-channel data, 2 epochs of 2 batches.
RUN = ["data=synthetic", "data.in_chans=3", "data.n_train=64", "data.n_val=32", "data.n_test=32",
       "data.batch_size=32", "trainer.max_epochs=2", "eval_attack.n_examples=16", "eval_attack.steps=2"]
# The default explanation matrix (every method, metric and model metric), on 8 examples after every
# epoch, with smaller sample counts.
EXPLAIN = ["explain=default", "explain.n_examples=8", "explain.every_n_epochs=1", "explain.n_saliency_examples=2",
           "explain.methods.smoothgrad.n_samples=4", "explain.methods.lime.n_samples=16",
           "explain.methods.kernel_shap.n_samples=16", "explain.metrics.infidelity.n_samples=6",
           "+explain.metrics.robust_accuracy.steps=3"]
# A GPU runs CIFAR-shaped 32x32 inputs, the default small_cnn and the default W&B logger (offline);
# the CPU case runs 8x8 inputs, a narrow head and the CSV logger to stay within a few seconds.
GPU_RUN = ["data.image_size=32"]
CPU_RUN = ["data.image_size=8", "model.hidden=128", "logger=csv"]
CASES = [
    pytest.param("cpu", "bf16-mixed", True, CPU_RUN, id="cpu-bf16-channels_last"),
    pytest.param("cuda", "32-true", False, GPU_RUN, marks=[pytest.mark.gpu, NEEDS_CUDA], id="cuda-32"),
    pytest.param("cuda", "bf16-mixed", True, GPU_RUN, marks=[pytest.mark.gpu, NEEDS_CUDA],
                 id="cuda-bf16-channels_last"),
]


def evaluate(ckpt: str, out, device: str) -> dict:
    cfg = compose("eval", [f"ckpt_path={ckpt}", f"output_dir={out}", "logger=none", "split=val",
                           f"device={device}", *EXPLAIN])
    return evaluate_checkpoint(cfg)


def assert_same_values(got: dict, expected: dict, what: str) -> None:
    # eval.py adds model/clean_accuracy to what the callback logs; every callback key must agree
    assert set(expected) <= set(got) and set(got) - set(expected) <= {"model/clean_accuracy"}, what
    for key, summary in expected.items():
        assert got[key]["mean"] == pytest.approx(summary["mean"], rel=RTOL, abs=1e-12), f"{what}: {key}"


@pytest.mark.parametrize("device,precision,channels_last,sizes", CASES)
def test_epoch_evaluation_on_the_device_equals_eval_script_on_the_cpu(tmp_path, device, precision, channels_last,
                                                                      sizes):
    trainer = "gpu" if device == "cuda" else "cpu"
    report = train(compose("train", [*RUN, *sizes, *EXPLAIN, f"trainer={trainer}", f"trainer.precision={precision}",
                                     f"channels_last={str(channels_last).lower()}",
                                     f"paths.output_dir={tmp_path / 'out'}", f"paths.checkpoints={tmp_path / 'ckpt'}"]))
    assert report["status"] == "finished"
    xai = tmp_path / "out" / "xai"
    assert (xai / "val_epoch000.json").exists()
    callback = json.loads((xai / "val_epoch001.json").read_text())["metrics"]
    assert {"xai/local_lipschitz/kernel_shap", "model/robust_accuracy", "xai/bound_ratio/lime"} <= set(callback)
    for key in ("xai/local_lipschitz/grad", "model/model_smoothness"):  # what the run logged is that file
        assert report["fit"][key] == pytest.approx(callback[key]["mean"], rel=1e-6)

    ckpt = f"{report['checkpoint_dir']}/last.ckpt"
    on_cpu = evaluate(ckpt, tmp_path / "eval-cpu", "cpu")
    assert on_cpu["epoch"] == 1 and on_cpu["n_examples"] == 8  # the epoch key of the last evaluation
    assert_same_values(on_cpu["summaries"], callback, f"eval.py device=cpu vs the {device} run's callback")
    on_device = evaluate(ckpt, tmp_path / "eval-device", device)
    assert_same_values(on_device["summaries"], on_cpu["summaries"], f"eval.py device={device} vs device=cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_eval_device_cuda_without_a_gpu_names_the_fix():
    from rxlit.app.evaluate import pick_device

    with pytest.raises(ValueError, match="pass device=cpu"):
        pick_device("cuda")
    assert pick_device("auto") == torch.device("cpu")
