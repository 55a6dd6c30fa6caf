"""The same explanation and metric values on every device, from the same weights and keyed noise.

The reference is always the CPU with contiguous tensors. On a GPU each value is recomputed there, in
both memory layouts; on the CPU the channels-last layout is the second route (convolutions, pooling
and BatchNorm then run other kernels, and explanation code that assumes a contiguous layout breaks).
Tolerances: :data:`gpu_helpers.TOLERANCE` (float64 1e-7 relative, float32 1e-3 relative, each plus
1e-10 / 1e-5 of the largest entry).
"""

from __future__ import annotations

import inspect

import pytest
import torch
from gpu_helpers import DEVICES, assert_close, inputs, on, routes, tiny_net

from rxlit import rng
from rxlit.explain import explain, list_methods
from rxlit.metrics import METRICS, compute_metric, robust_accuracy
from rxlit.metrics.perturbations import FlatStream
from rxlit.rng import ExampleRNG, hash_counters

DTYPES = [torch.float64, torch.float32]
INDEX = [10, 3, 7, 42]  # dataset indices that key the noise (not 0..B-1: the key must travel)
EPOCH = 2

# Small sample counts: the comparison is of the same computation on two devices, not of estimators.
METHOD_OPTIONS = {
    "lime": {"n_samples": 24, "n_features": 16}, "kernel_shap": {"n_samples": 24, "n_features": 16},
    "clime": {"n_samples": 24, "n_features": 16}, "noisy_baseline": {"n_samples": 24},
    "smoothgrad": {"n_samples": 4}, "unigrad": {"n_samples": 4}, "smoothed": {"n_samples": 4}, "integrated_gradients": {"steps": 5},
    "square": {"max_side": 2},
}
METRIC_OPTIONS = {
    "local_lipschitz": {"n_samples": 6}, "max_sensitivity": {"n_samples": 6},
    "avg_sensitivity": {"n_samples": 6},
    "adversarial_sensitivity": {"n_samples": 4, "steps": 3, "n_directions": 4},
    "infidelity": {"n_samples": 8}, "tan_faithfulness": {"groups": 16},
    "deletion_auc": {"groups": 16}, "insertion_auc": {"groups": 16},
    "faithfulness_correlation": {"n_samples": 8, "groups": 16},
    "model_local_lipschitz": {"n_samples": 6}, "model_smoothness": {"n_samples": 6},
    "gradient_norm": {}, "clean_accuracy": {}, "robust_accuracy": {"steps": 3, "eps": 8 / 255, "step": 2 / 255},
}


# --------------------------------------------------------------------------------- keyed noise

@pytest.mark.parametrize("device", DEVICES)
def test_keyed_noise_is_generated_on_the_device_and_equals_the_cpu_noise(device):
    """Uniforms are integer hashes: bit-identical everywhere. Normals add log/sqrt/cos/sin, which
    GPUs round differently in the last float32 bit or two (values up to ~5: 2e-6 absolute)."""
    keys = torch.tensor([0, 1, 2**31, 2**32 - 1, 123456789], dtype=torch.int64)
    assert torch.equal(hash_counters(keys.to(device), 5, 1000).cpu(), hash_counters(keys, 5, 1000))
    # 70 000 numbers per example: several CPU blocks (2**16) but one accelerator block (2**22)
    for shape in [(3, 5, 5), (70_000,)]:
        cpu, dev = ExampleRNG(4, INDEX, EPOCH), ExampleRNG(4, INDEX, EPOCH)
        u = dev.uniform(shape, device=device)
        assert u.device.type == device
        assert torch.equal(u.cpu(), cpu.uniform(shape))
        z = dev.normal(shape, device=device, dtype=torch.float64)
        assert z.device.type == device and z.dtype == torch.float64
        torch.testing.assert_close(z.cpu(), cpu.normal(shape, dtype=torch.float64), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_example_keys_given_on_the_device_work_everywhere(device):
    """An index tensor on the GPU (what a user holding GPU batches passes as ``index=``) keys the same
    numbers as the CPU index, through subsets and the metrics' flattened streams."""
    index = torch.tensor(INDEX, device=device)
    on_device, on_cpu = ExampleRNG(4, index, EPOCH), ExampleRNG(4, INDEX, EPOCH)
    assert on_device.index.device.type == "cpu"  # keys are host-side; draws move them to the device
    rows = torch.tensor([2, 0], device=device)
    assert torch.equal(on_device.subset(rows).uniform((7,), device=device).cpu(),
                       on_cpu.subset(torch.tensor([2, 0])).uniform((7,)))
    flat_device, flat_cpu = FlatStream(on_device, 4, 3), FlatStream(on_cpu, 4, 3)
    assert torch.equal(flat_device.uniform(slice(2, 9), (5,), device).cpu(), flat_cpu.uniform(slice(2, 9), (5,)))
    # a CPU torch.Generator gives the same numbers whatever device the noise is used on
    drawn = rng.normal(torch.Generator().manual_seed(0), 2, (6,), device=device)
    assert drawn.device.type == device
    assert torch.equal(drawn.cpu(), rng.normal(torch.Generator().manual_seed(0), 2, (6,)))


# --------------------------------------------------------------------------- explanation methods

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_every_explanation_method_gives_the_cpu_value(device, dtype):
    net, x = tiny_net(dtype), inputs(dtype)
    with torch.no_grad():
        target = net(x).argmax(1)
    for name in list_methods():
        options = METHOD_OPTIONS.get(name, {})
        expected = explain(net, x, target, name, generator=ExampleRNG(0, INDEX, EPOCH), **options)
        for channels_last in routes(device):
            model, xd = on(device, net, x, channels_last)
            got = explain(model, xd, target.to(device), name, generator=ExampleRNG(0, INDEX, EPOCH), **options)
            assert got.device.type == device and got.shape == x.shape
            assert_close(got, expected, f"{name} {dtype} on {device}, channels_last={channels_last}")


# ----------------------------------------------------------------------------------------- metrics

def metric_call(name: str, model, x, target, method: str, device: str, options: dict) -> torch.Tensor:
    params = inspect.signature(METRICS.get(name)).parameters
    extra = {}
    if "seed" in params:  # keyed: the index travels as a tensor on the device
        extra = {"seed": 5, "index": torch.tensor(INDEX, device=device), "epoch": EPOCH}
    if method == "smoothgrad" and "method_options" in params:
        extra["method_options"] = {"n_samples": 4}
    return compute_metric(name, model, x, target, method=method, **extra, **options)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", METRICS.names())
def test_every_metric_gives_the_cpu_value(device, name):
    """Every registered metric, of a deterministic (grad) and a sampled (SmoothGrad) method."""
    assert name in METRIC_OPTIONS, f"new metric {name!r}: add its small test options to METRIC_OPTIONS"
    methods = ["grad", "smoothgrad"] if "method_options" in inspect.signature(METRICS.get(name)).parameters else ["grad"]
    for dtype in DTYPES:
        net, x = tiny_net(dtype), inputs(dtype)
        with torch.no_grad():
            target = net(x).argmax(1)  # explicit targets: no argmax tie can differ between devices
        for method in methods:
            expected = metric_call(name, net, x, target, method, "cpu", METRIC_OPTIONS[name])
            assert expected.shape == (4,) and torch.isfinite(expected).all()
            for channels_last in routes(device):
                model, xd = on(device, net, x, channels_last)
                got = metric_call(name, model, xd, target.to(device), method, device, METRIC_OPTIONS[name])
                assert got.device.type == device
                assert_close(got, expected, f"{name}({method}) {dtype} on {device}, channels_last={channels_last}")


@pytest.mark.parametrize("device", DEVICES)
def test_keyed_robust_accuracy_gives_the_cpu_value(device):
    """robust_accuracy (the evaluation's and val/adv_acc's PGD) draws its start from keyed noise, so
    it is the same on every device."""
    net, x = tiny_net(torch.float64), inputs(torch.float64, batch=8)
    with torch.no_grad():
        y = net(x).argmax(1)
    index = torch.arange(20, 28)
    options = {"eps": 0.05, "step": 0.0125, "steps": 5, "seed": 3, "epoch": EPOCH}
    expected = robust_accuracy(net, x, y, index=index, **options)
    assert 0 < expected.sum() < 8  # some examples survive the attack, some do not: a real comparison
    for channels_last in routes(device):
        model, xd = on(device, net, x, channels_last)
        got = robust_accuracy(model, xd, y.to(device), index=index.to(device), **options)
        assert torch.equal(got.cpu(), expected)
