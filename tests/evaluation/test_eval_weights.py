"""scripts/eval.py weights=: every format, saved in its own on-disk layout, evaluates to the same logits
and metrics as the same weights in memory (``rxlit.evaluate``); bad files fail with clear errors."""

import argparse
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import rxlit
from rxlit.app.evaluate import eval_examples, evaluate_checkpoint, resolve_data
from rxlit.models import WeightsError
from rxlit.models.backbones.robustbench import CifarBasicBlock, CifarResNet, PreActResNet, WideResNet
from rxlit.models.backbones.small import mlp, small_cnn

REPO = Path(__file__).resolve().parents[2]
# One gradient method and one of each metric kind, at the smallest sample counts.
METRICS = {"local_lipschitz": {"n_samples": 2}, "tan_faithfulness": {"groups": 4},
           "model_local_lipschitz": {"n_samples": 2}, "model_smoothness": {"n_samples": 2},
           "robust_accuracy": {"steps": 1}}
CIFAR_LIKE = {"image_size": 32, "in_chans": 3, "num_classes": 10, "n_train": 16, "n_val": 16, "n_test": 16}
COLOUR_8X8 = {**CIFAR_LIKE, "image_size": 8}  # the CIFAR-stem networks pool globally: any size works
DIGITS: dict = {}


def explain_overrides(n: int, metrics: dict, saliency: int = 1) -> list[str]:
    as_yaml = "{" + ", ".join(f"{k}: {{{', '.join(f'{o}: {v}' for o, v in opts.items())}}}"
                              for k, opts in metrics.items()) + "}"
    return ["explain=default", f"explain.n_examples={n}", f"explain.n_saliency_examples={saliency}",
            "explain.progress=false", "~explain.methods", "+explain.methods={grad: {}}", "~explain.metrics",
            f"+explain.metrics={as_yaml}"]


def run_eval(tmp_path, data: str, data_options: dict, *overrides, n: int = 4, metrics=METRICS, saliency: int = 1):
    from rxlit_configs import compose

    data_args = [f"data={data}"] + [f"data.{k}={v}" for k, v in data_options.items()]
    cfg = compose("eval", [f"output_dir={tmp_path / 'eval'}", "logger=none", "save_logits=true", *data_args,
                           *explain_overrides(n, metrics, saliency), *overrides])
    return evaluate_checkpoint(cfg)


def reference(net: nn.Module, data: str, data_options: dict, n: int = 4, metrics=METRICS, saliency: int = 1,
              mean=None, std=None) -> dict:
    """The same evaluation of the network object in memory."""
    explain = {"n_examples": n, "n_saliency_examples": saliency, "progress": False, "methods": {"grad": {}},
               "metrics": metrics}
    return rxlit.evaluate(net, data, mean=mean, std=std, explain=explain, data_options=data_options, device="cpu")


def assert_same_evaluation(loaded: dict, expected: dict, tmp_path, net, data, data_options, mean=None, std=None):
    assert set(loaded["summaries"]) == set(expected["summaries"])
    for key, summary in expected["summaries"].items():
        for field in ("mean", "ci_low", "ci_high"):
            assert loaded["summaries"][key][field] == pytest.approx(summary[field], rel=1e-6, abs=1e-9, nan_ok=True), key
    saved = torch.load(tmp_path / "eval" / "logits.pt", weights_only=True)
    datamodule, _ = resolve_data(data, 0, data_options)
    x, y, index = eval_examples(datamodule, len(saved["index"]), "test")
    assert torch.equal(saved["index"], index) and torch.equal(saved["y"], y)
    with torch.no_grad():
        inputs = x if mean is None else (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
        torch.testing.assert_close(saved["logits"], net.eval()(inputs), rtol=1e-6, atol=1e-6)


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random weights and BatchNorm statistics (a missed buffer would change the logits)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            noise = torch.randn(t.shape, generator=gen)
            t.copy_(0.5 + noise.abs() if name.endswith("running_var") else
                    noise * (2.0 / t[0].numel()) ** 0.5 if t.dim() >= 2 else 0.1 * noise)
    return model.eval()


# ----------------------------------------------------------------------------------- each format
def test_robustbench_wrn28_10_checkpoint(tmp_path):
    """RobustBench's layout ({"state_dict": {"module.<name>": ...}}, as Carmon et al. 2019): no
    normalisation (RobustBench models take [0, 1] inputs), WRN-28-10 on 32x32 images."""
    net = randomize(WideResNet(28, 10), seed=0)
    path = tmp_path / "Carmon2019Unlabeled.pt"
    torch.save({"state_dict": OrderedDict(("module." + k, v) for k, v in net.state_dict().items())}, path)
    small = {"local_lipschitz": {"n_samples": 1}}  # 36M parameters: the other formats cover every metric kind
    loaded = run_eval(tmp_path, "synthetic", CIFAR_LIKE, "model=wrn28_10", f"weights={path}",
                      "weights_format=robustbench", n=2, metrics=small, saliency=0)
    assert loaded["normalization"]["mean"] is None and loaded["normalization"]["source"].startswith("none (RobustBench")
    assert loaded["format"] == "robustbench"
    expected = reference(net, "synthetic", CIFAR_LIKE, n=2, metrics=small, saliency=0)
    assert_same_evaluation(loaded, expected, tmp_path, net, "synthetic", CIFAR_LIKE)


def test_robustbench_preact_checkpoint_with_normalisation_buffers(tmp_path):
    """A RobustBench model that normalises with registered mu/sigma buffers (Rice et al. 2020 style):
    the mean/std come from the file, whatever the data set's are."""
    net = randomize(PreActResNet(), seed=1)
    mu, sigma = torch.tensor([0.49, 0.48, 0.45]).view(1, 3, 1, 1), torch.tensor([0.25, 0.24, 0.26]).view(1, 3, 1, 1)
    path = tmp_path / "Rice2020Overfitting.pt"
    torch.save({"mu": mu, "sigma": sigma, **net.state_dict()}, path)
    loaded = run_eval(tmp_path, "synthetic", COLOUR_8X8, "model=preact_resnet18", f"weights={path}",
                      "weights_format=robustbench", n=2)
    mean, std = mu.flatten().tolist(), sigma.flatten().tolist()
    assert loaded["normalization"]["mean"] == pytest.approx(mean)
    assert loaded["normalization"]["source"] == "the checkpoint (robustbench format)"
    expected = reference(net, "synthetic", COLOUR_8X8, n=2, mean=mean, std=std)
    assert_same_evaluation(loaded, expected, tmp_path, net, "synthetic", COLOUR_8X8, mean, std)


def robustness_file(net: nn.Module, mean: list[float], std: list[float]) -> dict:
    """The MadryLab robustness library's checkpoint: AttackerModel(normalizer, model, attacker) under
    DataParallel, saved with the optimizer and epoch (robustness/train.py)."""
    c = len(mean)
    normalizer = {"new_mean": torch.tensor(mean).view(c, 1, 1), "new_std": torch.tensor(std).view(c, 1, 1)}
    state = OrderedDict()
    state.update((f"module.normalizer.{k}", v) for k, v in normalizer.items())
    state.update((f"module.model.{k}", v) for k, v in net.state_dict().items())
    state.update((f"module.attacker.normalize.{k}", v) for k, v in normalizer.items())
    state.update((f"module.attacker.model.{k}", v.clone()) for k, v in net.state_dict().items())
    return {"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0]}]},
            "schedule": None, "epoch": 150, "amp": None, "prec1": torch.tensor(91.3)}


def test_robustness_library_checkpoint_reads_its_normaliser(tmp_path):
    net = randomize(CifarResNet(CifarBasicBlock, (2, 2, 2, 2), num_classes=10, in_chans=1), seed=2)
    mean, std = [0.3], [0.2]  # not the digits statistics: they must come from the file
    path = tmp_path / "cifar_linf_8.pt"
    torch.save(robustness_file(net, mean, std), path)
    loaded = run_eval(tmp_path, "digits", DIGITS, "model=cifar_resnet18", f"weights={path}")  # format: auto
    assert loaded["format"] == "robustness"
    assert loaded["normalization"]["mean"] == pytest.approx(mean) and loaded["normalization"]["std"] == pytest.approx(std)
    assert "epoch 150" in loaded["notes"][0]
    expected = reference(net, "digits", DIGITS, mean=mean, std=std)
    assert_same_evaluation(loaded, expected, tmp_path, net, "digits", DIGITS, mean, std)


def test_plain_state_dict_with_ddp_prefix_uses_the_data_statistics(tmp_path):
    torch.manual_seed(3)
    net = small_cnn(num_classes=10, in_chans=1, image_size=(8, 8)).eval()
    path = tmp_path / "model.pth"
    torch.save({"model_state_dict": {"module." + k: v for k, v in net.state_dict().items()}, "epoch": 7,
                "args": argparse.Namespace(lr=0.1), "best_acc": np.float64(0.93)}, path)
    loaded = run_eval(tmp_path, "digits", DIGITS, "model=small_cnn", f"weights={path}")
    datamodule, _ = resolve_data("digits", 0, None)
    mean, std = list(datamodule.mean), list(datamodule.std)
    assert loaded["format"] == "state_dict" and loaded["normalization"]["source"] == "data set digits"
    assert loaded["normalization"]["mean"] == pytest.approx(mean)
    expected = reference(net, "digits", DIGITS, mean=mean, std=std)
    assert_same_evaluation(loaded, expected, tmp_path, net, "digits", DIGITS, mean, std)


def test_foreign_lightning_checkpoint_with_prefix_and_explicit_normalisation(tmp_path):
    torch.manual_seed(4)
    net = mlp(num_classes=10, in_chans=1, image_size=(8, 8), hidden=(32,)).eval()
    teacher = {f"teacher.{k}": torch.zeros_like(v) for k, v in net.state_dict().items()}  # same names, other module
    path = tmp_path / "epoch=3-step=30.ckpt"
    torch.save({"epoch": 3, "global_step": 30, "pytorch-lightning_version": "2.4.0",
                "state_dict": {**teacher, **{f"net.{k}": v for k, v in net.state_dict().items()}},
                "optimizer_states": [{"state": {}, "param_groups": []}], "lr_schedulers": [],
                "hparams_name": "kwargs", "hyper_parameters": {"lr": 0.01}}, path)
    mean, std = [0.5], [0.25]
    # Lightning's file names hold "=": Hydra needs the value quoted (weights="'.../epoch=3-step=30.ckpt'")
    loaded = run_eval(tmp_path, "digits", DIGITS, "model=mlp", "model.hidden=[32]", f"weights='{path}'",
                      "weights_prefix=net.", f"model.mean={mean}", f"model.std={std}")
    assert loaded["format"] == "lightning" and loaded["normalization"]["source"] == "model.mean/model.std"
    with pytest.raises(WeightsError, match="several parts of the file fit the architecture equally well "
                                           r"\('net.', 'teacher.'\); choose one with weights_prefix="):
        run_eval(tmp_path, "digits", DIGITS, "model=mlp", "model.hidden=[32]", f"weights='{path}'")
    expected = reference(net, "digits", DIGITS, mean=mean, std=std)
    assert_same_evaluation(loaded, expected, tmp_path, net, "digits", DIGITS, mean, std)


def test_first_n_subset_is_the_split_in_order(tmp_path):
    torch.manual_seed(5)
    net = small_cnn(num_classes=10, in_chans=1, image_size=(8, 8))
    torch.save(net.state_dict(), tmp_path / "w.pt")
    loaded = run_eval(tmp_path, "digits", DIGITS, "model=small_cnn", f"weights={tmp_path / 'w.pt'}",
                      "subset=first_n", "model.normalize=false", n=5, metrics={"local_lipschitz": {"n_samples": 1}})
    saved = torch.load(tmp_path / "eval" / "logits.pt", weights_only=True)
    datamodule, _ = resolve_data("digits", 0, None)
    test = datamodule.split("test")
    assert loaded["subset"] == "first_n" and saved["index"].tolist() == [0, 1, 2, 3, 4]
    x = torch.stack([test[i][0] for i in range(5)])
    with torch.no_grad():
        torch.testing.assert_close(saved["logits"], net.eval()(x))  # model.normalize=false: raw [0, 1] inputs
    accuracy = (saved["logits"].argmax(1) == saved["y"]).float().mean().item()
    assert loaded["summaries"]["model/clean_accuracy"]["mean"] == pytest.approx(accuracy)


# --------------------------------------------------------------------------------------- errors
def test_wrong_architecture_names_keys_and_suggests_the_right_one(tmp_path):
    net = CifarResNet(CifarBasicBlock, (2, 2, 2, 2))
    path = tmp_path / "resnet18_linf.pt"
    torch.save(net.state_dict(), path)
    with pytest.raises(WeightsError) as info:
        run_eval(tmp_path, "synthetic", CIFAR_LIKE, "model=resnet18", f"weights={path}")
    message = str(info.value)
    assert "missing from the file: 20 of 122 keys, e.g. layer2.0.downsample.0.weight" in message
    assert "unexpected in the file: 20 of 122 keys, e.g. layer2.0.shortcut.0.weight" in message
    assert "the file fits model=cifar_resnet18 (100% of the names and shapes fit)" in message
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_imagenet_stem_into_cifar_stem_names_the_layer_then_loads_with_head_replacement(tmp_path):
    import torchvision

    tv = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(tv.state_dict(), path)
    with pytest.raises(WeightsError) as info:
        run_eval(tmp_path, "synthetic", CIFAR_LIKE, "model=resnet18", f"weights={path}")
    message = str(info.value)
    assert "shape differs at layer conv1.weight: file (64, 3, 7, 7) vs model (64, 3, 3, 3)" in message
    assert "ImageNet stem" in message and "model=torchvision model.arch=resnet18" in message
    assert "the file has 1000 classes, the data 10" in message and "model.num_classes=1000" in message
    loaded = run_eval(tmp_path, "synthetic", CIFAR_LIKE, "model=torchvision", f"weights={path}",
                      "model.num_classes=1000", n=2, metrics={"local_lipschitz": {"n_samples": 1}}, saliency=0)
    assert loaded["head_replaced"] == "fc"


def test_strict_false_loads_what_fits_and_reports_the_rest(tmp_path):
    net = small_cnn(num_classes=10, in_chans=1, image_size=(8, 8))
    state = net.state_dict()
    state.pop("9.bias")
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(WeightsError, match="missing from the file: 1 of 8 keys, e.g. 9.bias"):
        run_eval(tmp_path, "digits", DIGITS, "model=small_cnn", f"weights={tmp_path / 'partial.pt'}")
    loaded = run_eval(tmp_path, "digits", DIGITS, "model=small_cnn", f"weights={tmp_path / 'partial.pt'}",
                      "model.strict=false", n=2, metrics={"local_lipschitz": {"n_samples": 1}}, saliency=0)
    assert loaded["missing"] == ["9.bias"] and loaded["unexpected"] == []


class Custom:  # a class weights-only loading must refuse to rebuild
    pass


@pytest.mark.parametrize("kind, expected", [
    ("text", "is not a checkpoint: it looks like a text file"),
    ("png", "is not a checkpoint: it looks like a PNG image"),
    ("object", "stores a Python object of type tests.evaluation.test_eval_weights.Custom"),
    ("no_state", "no state dict (parameter name -> tensor) in"),
    ("missing", "does not exist"),
])
def test_files_that_are_not_checkpoints_fail_clearly(tmp_path, kind, expected):
    from PIL import Image

    path = tmp_path / f"{kind}.pt"
    if kind == "text":
        path.write_text("conv1.weight: 0.1 0.2\n")
    elif kind == "png":
        Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(path, format="PNG")
    elif kind == "object":
        torch.save({"state_dict": {"w": torch.zeros(1)}, "config": Custom()}, path)
    elif kind == "no_state":
        torch.save({"epoch": 3, "accuracy": 0.9}, path)
    with pytest.raises(WeightsError) as info:
        run_eval(tmp_path, "digits", DIGITS, "model=small_cnn", f"weights={path}")
    assert expected.split(" of type ")[0] in str(info.value)
    if kind == "object":  # the class name (its module depends on how pytest imported this file) and the fix
        assert "Custom besides its tensors" in str(info.value) and "weights=OUT.pt" in str(info.value)


def test_eval_script_prints_the_error_without_a_traceback(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("not weights")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "eval.py"), "model=small_cnn", f"weights={bad}",
                           "data=digits", "logger=none", f"hydra.run.dir={tmp_path / 'out'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "it looks like a text file" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_weights_needs_model_and_data_and_not_both_routes(tmp_path):
    from rxlit_configs import compose

    cases = [(["weights=w.pt", "data=digits"], "weights= needs the architecture"),
             (["weights=w.pt", "model=mlp"], "weights= needs the data set"),
             (["weights=w.pt", "ckpt_path=c.ckpt"], "pass either ckpt_path="),
             ([], "no checkpoint given")]
    for overrides, message in cases:
        with pytest.raises(ValueError, match=message):
            evaluate_checkpoint(compose("eval", [f"output_dir={tmp_path}", "logger=none", *overrides]))


# ---------------------------------------------------------------------- options of the evaluation
def test_autoattack_is_an_option_of_robust_accuracy():
    from rxlit.evaluation import evaluate_subset, parse_spec
    from rxlit.metrics.model import robust_accuracy

    torch.manual_seed(0)
    model = small_cnn(num_classes=10, in_chans=1, image_size=(8, 8)).eval()
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:2] = (y[:2] + 1) % 10  # two examples misclassified before any attack
    index = torch.arange(6)

    def robust(options):
        spec = parse_spec({"methods": {}, "metrics": {"clean_accuracy": {}, "robust_accuracy": options}})
        summaries = evaluate_subset(model, x, y, index, spec, epoch=0).summaries
        return summaries["model/clean_accuracy"]["mean"], summaries["model/robust_accuracy"]["mean"]

    clean, pgd = robust({"eps": 0.5, "step": 0.001, "steps": 2})  # keyed PGD, tiny steps: nothing breaks
    _, auto = robust({"eps": 0.5, "attack": "autoattack"})
    assert clean == pytest.approx(4 / 6) and pgd == pytest.approx(4 / 6)
    direct = robust_accuracy(model, x, y, attack="autoattack", eps=0.5, seed=0)
    assert auto == pytest.approx(float(direct.mean())) and auto < pgd
    with pytest.raises(ValueError, match="attack must be one of pgd, autoattack, got 'cw'"):
        parse_spec({"methods": {}, "metrics": {"robust_accuracy": {"attack": "cw"}}})


def test_library_route_on_tensors_matches_the_closed_form_accuracy(tmp_path):
    torch.manual_seed(6)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x, y = torch.rand(9, 3, 2, 2), torch.randint(0, 3, (9,))
    result = rxlit.evaluate(net, (x, y), explain={"methods": {"grad": {}}, "metrics": {"local_lipschitz": {
        "n_samples": 3}}, "n_saliency_examples": 2, "progress": False}, n_examples=9, output_dir=tmp_path)
    with torch.no_grad():
        accuracy = (net(x).argmax(1) == y).float().mean().item()
    assert result["summaries"]["model/clean_accuracy"]["mean"] == pytest.approx(accuracy)
    # a linear model's gradient is the same everywhere: its explanation Lipschitz estimate is 0
    assert result["summaries"]["xai/local_lipschitz/grad"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert result["normalization"]["mean"] is None
    assert {"metrics.json", "metrics.md", "saliency.png"} <= {p.name for p in tmp_path.iterdir()}
