"""Every registered backbone: shapes, input gradients, hook-safe activations, channels_last."""

import pytest
import torch
from torch import nn

from rxlit.models import BACKBONES, activation_kinds, build_model, replace_activations
from rxlit.models.activations import is_activation

ALL_BACKBONES = BACKBONES.names()
NUM_CLASSES = 10


def test_logits_shape(backbone_name, shape, cached_model, images):
    in_chans, size = shape
    model = cached_model(backbone_name, in_chans, size).eval()
    with torch.no_grad():
        logits = model(images(in_chans, size))
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()


def test_input_gradient_flows(backbone_name, shape, cached_model, images):
    in_chans, size = shape
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


@pytest.mark.parametrize("name", ALL_BACKBONES)
def test_each_activation_module_called_once(name, cached_model, images):
    """Hook-based explanations need one module per activation use (torchvision reuses self.relu)."""
    model = cached_model(name, 3, 32).eval()
    calls = {}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, key=n: calls.__setitem__(key, calls.get(key, 0) + 1))
        for n, m in model.named_modules()
        if is_activation(m)
    ]
    try:
        with torch.no_grad():
            model(images(3, 32))
    finally:
        for hook in hooks:
            hook.remove()
    assert calls, "no activation module ran"
    assert {n: c for n, c in calls.items() if c != 1} == {}


class _Marker(nn.Module):
    """A stand-in activation that calls no activation function."""

    def forward(self, x):
        return x.clamp(min=0)


_FUNCTIONAL = {"relu", "relu_", "gelu", "silu", "hardswish", "elu", "leaky_relu", "relu6", "mish"}


@pytest.mark.parametrize("name", [n for n in ALL_BACKBONES if n != "timm"])
def test_no_functional_activation_in_forward(name, images):
    """With every activation module swapped out, no relu/gelu function may still be called."""
    from torch.overrides import TorchFunctionMode

    class Record(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.seen = set()

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.seen.add(getattr(func, "__name__", str(func)))
            return func(*args, **(kwargs or {}))

    model = build_model(name, NUM_CLASSES, 1, 8)
    replaced = replace_activations(model, _Marker, kind=(nn.ReLU, nn.GELU))
    assert replaced > 0
    with torch.no_grad(), Record() as record:
        model(images(1, 8))
    assert record.seen & _FUNCTIONAL == set()


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


@pytest.mark.parametrize("name", ["small_cnn", "mlp", "resnet18", "googlenet", "vit_tiny"])
def test_channels_last(name, images):
    model = build_model(name, NUM_CLASSES, 3, 32).eval()
    x = images(3, 32)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        got = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
