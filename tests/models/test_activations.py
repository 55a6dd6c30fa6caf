"""activation_kinds, replace_activations and disable_inplace on small hand-made models."""

import pytest
import torch
from torch import nn

from rxlit.models import activation_kinds, build_model, disable_inplace, replace_activations


def test_activation_kinds_lists_classes_not_softmax():
    model = nn.Sequential(nn.Linear(2, 2), nn.SiLU(), nn.Linear(2, 2), nn.GELU(), nn.Softmax(dim=1))
    assert activation_kinds(model) == {"SiLU", "GELU"}


def test_replace_activations_swaps_every_relu_with_fresh_modules():
    model = build_model("resnet18", 10, 1, 8)
    n_relu = sum(isinstance(m, nn.ReLU) for m in model.modules())
    replaced = replace_activations(model, lambda: nn.Softplus(beta=10))
    assert replaced == n_relu > 0
    assert activation_kinds(model) == {"Softplus"}
    softplus = [m for m in model.modules() if isinstance(m, nn.Softplus)]
    assert len({id(m) for m in softplus}) == replaced
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_replace_activations_changes_the_function():
    torch.manual_seed(0)
    model = build_model("small_cnn", 3, 1, 8)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        before = model(x)
        replace_activations(model, lambda: nn.Softplus(beta=1))
        after = model(x)
    assert not torch.allclose(before, after)


def test_disable_inplace():
    model = nn.Sequential(nn.ReLU(inplace=True), nn.Hardswish(inplace=True), nn.Dropout(inplace=True))
    assert disable_inplace(model) == 3
    assert not any(getattr(m, "inplace", False) for m in model.modules())


def test_one_activation_list_for_models_and_guided_backprop():
    """activation_kinds and guided backprop's refusal read the same list: GLU (a gated activation)
    is named by one and refused by the other; softmax and attention are neither."""
    from rxlit.explain.guided import check_relu_network

    glu = nn.Sequential(nn.Linear(4, 8), nn.GLU(), nn.Linear(4, 2), nn.Softmax(dim=1))
    assert activation_kinds(glu) == {"GLU"}
    with pytest.raises(ValueError, match="GLU activation at '1'"):
        check_relu_network(glu)
    relu = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.MultiheadAttention(4, 1), nn.Softmax(dim=1))
    assert activation_kinds(relu) == {"ReLU"}
    check_relu_network(relu)  # nothing to refuse

    class Swish(nn.SiLU):  # a subclass defined outside torch is still an activation
        pass

    assert activation_kinds(nn.Sequential(Swish())) == {"Swish"}
