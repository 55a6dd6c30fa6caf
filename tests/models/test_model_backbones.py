"""Every registered backbone: shapes, input gradients, hook-safe activations, channels_last."""

import copy

import pytest
import torch
from torch.overrides import TorchFunctionMode

from rxlit.activations import is_activation
from rxlit.models import BACKBONES, activation_kinds, build_model, min_image_size

ALL_BACKBONES = BACKBONES.names()
NUM_CLASSES = 10


def test_logits_shape(backbone_name, shape, cached_model, images):
    in_chans, size = shape
    minimum = min_image_size(backbone_name)
    if size < minimum:  # a backbone that honestly cannot run here must say so before building
        with pytest.raises(ValueError, match=f"at least {minimum}x{minimum}"):
            build_model(backbone_name, NUM_CLASSES, in_chans, size)
        return
    model = cached_model(backbone_name, in_chans, size).eval()
    with torch.no_grad():
        logits = model(images(in_chans, size))
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()


def test_input_gradient_flows(backbone_name, shape, cached_model, images):
    in_chans, size = shape
    if size < min_image_size(backbone_name):
        pytest.skip("below the backbone's minimum (refusal tested in test_logits_shape)")
    model = cached_model(backbone_name, in_chans, size).eval()
    x = images(in_chans, size, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x)[:, 0].sum(), x)
    assert grad.shape == x.shape
    assert torch.isfinite(grad).all()
    assert grad.abs().sum() > 0


@pytest.mark.parametrize("name", ALL_BACKBONES)
def test_no_inplace_anywhere(name, cached_model):
    model = cached_model(name, 3, 32)
    inplace = [n for n, m in model.named_modules() if getattr(m, "inplace", False)]
    assert inplace == []


class _RecordFunctions(TorchFunctionMode):
    """Records the name of every torch function called while active."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


_FUNCTIONAL = {"relu", "relu_", "gelu", "silu", "hardswish", "elu", "leaky_relu", "relu6", "mish"}


@pytest.mark.parametrize("name", ALL_BACKBONES)
def test_activations_are_modules_called_once(name, cached_model, images):
    """Hook-based explanations need every activation to be a module, run once per forward.

    torchvision reuses ``self.relu`` inside ResNet blocks and calls ``F.relu`` inside GoogLeNet's
    BasicConv2d; both are fixed in rxlit. Every relu/gelu/... function call must come from
    exactly one activation-module call.
    """
    in_chans, size = (1, 8) if min_image_size(name) <= 8 else (3, 32)
    model = cached_model(name, in_chans, size).eval()
    module_calls: dict[str, int] = {}

    def count(key):
        return lambda *_: module_calls.__setitem__(key, module_calls.get(key, 0) + 1)

    hooks = [m.register_forward_hook(count(n)) for n, m in model.named_modules() if is_activation(m)]
    try:
        with torch.no_grad(), _RecordFunctions() as record:
            model(images(in_chans, size))
    finally:
        for hook in hooks:
            hook.remove()
    assert module_calls, "no activation module ran"
    if name == "torchvision":  # torchvision's own ResNet blocks call self.relu twice (kept: its layout)
        return
    assert {n: c for n, c in module_calls.items() if c != 1} == {}
    functional = [c for c in record.calls if c in _FUNCTIONAL]
    if name != "timm":  # arbitrary timm models may use functional activations
        assert len(functional) == sum(module_calls.values())


def test_activation_kinds_resnet_and_vit(cached_model):
    assert activation_kinds(cached_model("resnet18", 3, 32)) == {"ReLU"}
    assert "GELU" in activation_kinds(cached_model("vit_tiny", 3, 32))
    assert "GELU" in activation_kinds(cached_model("swin_tiny", 3, 32))


@pytest.mark.parametrize("name", ["small_cnn", "resnet18", "vit_tiny"])
def test_double_backprop(name, cached_model, images):
    """Gradient-norm regularisation: backward through the input gradient, in train mode."""
    model = cached_model(name, 1, 8).train()
    x = images(1, 8, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([1, 2]))
    (grad,) = torch.autograd.grad(loss, x, create_graph=True)
    model.zero_grad()
    grad.norm().backward()
    param_grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert param_grads, "no parameter received a second-order gradient"
    assert all(torch.isfinite(g).all() for g in param_grads)
    assert sum(g.abs().sum() for g in param_grads) > 0
    assert x.grad is not None and torch.isfinite(x.grad).all()
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", ["small_cnn", "mlp", "resnet18", "vit_tiny"])
def test_channels_last(name, cached_model, images):
    model = copy.deepcopy(cached_model(name, 3, 32)).eval()
    x = images(3, 32)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        got = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
