"""RobustBench / robustness-library architectures: parameter names, shapes and forward passes.

The expected names, shapes and forward passes below are written from the published definitions
(RobustBench ``robustbench/model_zoo/architectures/wide_resnet.py`` and ``resnet.py``), not from
rxlit's code: a checkpoint of those models must load unmodified and compute the same function.
"""

import pytest
import torch
import torch.nn.functional as F

from rxlit.models import BACKBONES
from rxlit.models.backbones.robustbench import CifarBasicBlock, CifarResNet, PreActResNet, WideResNet

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def bn_keys(prefix: str, channels: int) -> dict:
    return {f"{prefix}.{k}": () if k == "num_batches_tracked" else (channels,) for k in BN}


def wrn_reference_keys(depth: int = 28, widen: int = 10, classes: int = 10) -> dict:
    """WideResNet(depth, widen_factor) of RobustBench wide_resnet.py (sub_block1=False): name -> shape."""
    n = (depth - 4) // 6
    widths = [16, 16 * widen, 32 * widen, 64 * widen]
    keys = {"conv1.weight": (16, 3, 3, 3)}
    for b in range(3):
        for i in range(n):
            cin, cout, p = widths[b] if i == 0 else widths[b + 1], widths[b + 1], f"block{b + 1}.layer.{i}"
            keys |= bn_keys(f"{p}.bn1", cin)
            keys[f"{p}.conv1.weight"] = (cout, cin, 3, 3)
            keys |= bn_keys(f"{p}.bn2", cout)
            keys[f"{p}.conv2.weight"] = (cout, cout, 3, 3)
            if cin != cout:  # convShortcut only where in_planes != out_planes
                keys[f"{p}.convShortcut.weight"] = (cout, cin, 1, 1)
    keys |= bn_keys("bn1", widths[3])
    keys |= {"fc.weight": (classes, widths[3]), "fc.bias": (classes,)}
    return keys


def preact_reference_keys(classes: int = 10) -> dict:
    """PreActResNet(PreActBlock, [2, 2, 2, 2]) of RobustBench resnet.py: name -> shape."""
    keys = {"conv1.weight": (64, 3, 3, 3)}
    cin = 64
    for layer, planes in enumerate((64, 128, 256, 512), start=1):
        for i in range(2):
            stride, p = (1 if layer == 1 else 2) if i == 0 else 1, f"layer{layer}.{i}"
            keys |= bn_keys(f"{p}.bn1", cin)
            keys[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
            keys |= bn_keys(f"{p}.bn2", planes)
            keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            if stride != 1 or cin != planes:
                keys[f"{p}.shortcut.0.weight"] = (planes, cin, 1, 1)
            cin = planes
    return keys | {"linear.weight": (classes, 512), "linear.bias": (classes,)}


def shapes(name: str) -> dict:
    with torch.device("meta"):
        model = BACKBONES.get(name)(num_classes=10, in_chans=3, image_size=(32, 32))
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_wrn28_10_has_robustbench_names_and_shapes():
    expected = wrn_reference_keys(28, 10)
    assert len(expected) == 155
    assert shapes("wrn28_10") == expected
    params = sum(torch.Size(s).numel() for k, s in expected.items() if not k.endswith(("running_mean", "running_var",
                                                                                        "num_batches_tracked")))
    assert params == 36_479_194  # WRN-28-10's published size (36.5M)


def test_wrn34_10_and_preact_resnet18_have_robustbench_names_and_shapes():
    assert shapes("wrn34_10") == wrn_reference_keys(34, 10)
    expected = preact_reference_keys()
    assert len(expected) == 102
    assert shapes("preact_resnet18") == expected
    assert "layer2.0.shortcut.0.weight" in expected and "layer1.0.shortcut.0.weight" not in expected


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random parameters and BatchNorm statistics, so a wrongly wired buffer changes the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            noise = torch.randn(tensor.shape, generator=gen)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + noise.abs())
            elif tensor.dim() >= 2:  # conv / linear weights at a scale that keeps activations O(1)
                tensor.copy_(noise * (2.0 / tensor[0].numel()) ** 0.5)
            else:
                tensor.copy_(0.1 * noise)
    return model.eval()


def bn(x, s, p):
    return F.batch_norm(x, s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"], s[f"{p}.bias"],
                        False, 0.0, 1e-5)


def wrn_reference_forward(s: dict, x, depth: int) -> torch.Tensor:
    """The forward pass of RobustBench's WideResNet (eval mode), from its published code."""
    out = F.conv2d(x, s["conv1.weight"], padding=1)
    n = (depth - 4) // 6
    for b in range(3):
        for i in range(n):
            p = f"block{b + 1}.layer.{i}"
            stride = 2 if (b > 0 and i == 0) else 1
            equal = f"{p}.convShortcut.weight" not in s
            if not equal:
                out = F.relu(bn(out, s, f"{p}.bn1"))  # x = relu1(bn1(x)): the shortcut sees it too
                act = out
            else:
                act = F.relu(bn(out, s, f"{p}.bn1"))
            h = F.relu(bn(F.conv2d(act, s[f"{p}.conv1.weight"], stride=stride, padding=1), s, f"{p}.bn2"))
            h = F.conv2d(h, s[f"{p}.conv2.weight"], padding=1)
            out = (out if equal else F.conv2d(out, s[f"{p}.convShortcut.weight"], stride=stride)) + h
    out = F.relu(bn(out, s, "bn1"))
    out = F.avg_pool2d(out, 8).flatten(1)
    return F.linear(out, s["fc.weight"], s["fc.bias"])


def preact_reference_forward(s: dict, x) -> torch.Tensor:
    """The forward pass of RobustBench's PreActResNet-18 (eval mode), from its published code."""
    out = F.conv2d(x, s["conv1.weight"], padding=1)
    for layer in range(1, 5):
        for i in range(2):
            p = f"layer{layer}.{i}"
            stride = 2 if (layer > 1 and i == 0) else 1
            h = F.relu(bn(out, s, f"{p}.bn1"))
            shortcut = F.conv2d(out, s[f"{p}.shortcut.0.weight"], stride=stride) if f"{p}.shortcut.0.weight" in s \
                else out
            h = F.conv2d(h, s[f"{p}.conv1.weight"], stride=stride, padding=1)
            out = F.conv2d(F.relu(bn(h, s, f"{p}.bn2")), s[f"{p}.conv2.weight"], padding=1) + shortcut
    return F.linear(F.avg_pool2d(out, 4).flatten(1), s["linear.weight"], s["linear.bias"])


def cifar_resnet_reference_forward(s: dict, x) -> torch.Tensor:
    """ResNet-18 of RobustBench resnet.py / robustness cifar_models/resnet.py (eval mode)."""
    out = F.relu(bn(F.conv2d(x, s["conv1.weight"], padding=1), s, "bn1"))
    for layer in range(1, 5):
        for i in range(2):
            p = f"layer{layer}.{i}"
            stride = 2 if (layer > 1 and i == 0) else 1
            h = F.relu(bn(F.conv2d(out, s[f"{p}.conv1.weight"], stride=stride, padding=1), s, f"{p}.bn1"))
            h = bn(F.conv2d(h, s[f"{p}.conv2.weight"], padding=1), s, f"{p}.bn2")
            if f"{p}.shortcut.0.weight" in s:
                short = bn(F.conv2d(out, s[f"{p}.shortcut.0.weight"], stride=stride), s, f"{p}.shortcut.1")
            else:
                short = out
            out = F.relu(h + short)
    return F.linear(F.avg_pool2d(out, 4).flatten(1), s["linear.weight"], s["linear.bias"])


@pytest.mark.parametrize("depth", [10, 16])
def test_wide_resnet_forward_equals_the_published_forward(depth):
    # Small WRNs (same code path as 28-10 and 34-10): depth 10 has one block per group, 16 two.
    model = randomize(WideResNet(depth=depth, widen_factor=2))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), wrn_reference_forward(model.state_dict(), x, depth),
                                   rtol=1e-5, atol=1e-5)


def test_preact_and_cifar_resnet18_forward_equal_the_published_forward():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    preact = randomize(PreActResNet())
    cifar = randomize(CifarResNet(CifarBasicBlock, (2, 2, 2, 2)), seed=3)
    with torch.no_grad():
        torch.testing.assert_close(preact(x), preact_reference_forward(preact.state_dict(), x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(cifar(x), cifar_resnet_reference_forward(cifar.state_dict(), x), rtol=1e-5,
                                   atol=1e-5)


def test_wrn28_10_runs_on_32x32_with_input_gradients():
    model = BACKBONES.get("wrn28_10")(num_classes=10, in_chans=3, image_size=(32, 32)).eval()
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x)[0, 3], x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_optional_robustbench_layers_add_their_keys():
    sub = shapes_with("wrn28_10", sub_block1=True)
    assert "sub_block1.layer.0.convShortcut.weight" in sub and len(sub) == 155 + 4 * 12 + 1
    assert "fc.bias" not in shapes_with("wrn28_10", bias_last=False)
    assert shapes_with("preact_resnet18", bn_before_fc=True)["bn.running_var"] == (512,)


def shapes_with(name: str, **options) -> dict:
    with torch.device("meta"):
        model = BACKBONES.get(name)(num_classes=10, in_chans=3, image_size=(32, 32), **options)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
