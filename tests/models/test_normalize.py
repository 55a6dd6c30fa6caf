"""Normalize and NormalizedModel: exact arithmetic, any channel count, attributes."""

import pytest
import torch
from torch import nn

from rxlit.models import Normalize, NormalizedModel, build_model


def test_normalize_is_exact_per_channel():
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2) / 24
    expected = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.equal(Normalize(mean, std)(x), expected)


def test_normalize_single_value_broadcasts_and_none_is_identity():
    x = torch.rand(2, 5, 3, 3)
    assert torch.equal(Normalize(0.5, 0.5, in_chans=5)(x), (x - 0.5) / 0.5)
    assert torch.equal(Normalize(in_chans=5)(x), x)


def test_normalize_stats_are_buffers():
    norm = Normalize([0.1], [0.2])
    assert {"mean", "std"} <= set(norm.state_dict())
    assert list(norm.parameters()) == []


@pytest.mark.parametrize(
    "mean, std, message",
    [([0.1, 0.2], [0.3, 0.3, 0.3], "per-channel values"), ([0.1], [0.0], "positive")],
)
def test_normalize_rejects_bad_stats(mean, std, message):
    with pytest.raises(ValueError, match=message):
        Normalize(mean, std, in_chans=3)


def test_normalize_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match=r"\(B, 3"):
        Normalize([0.0] * 3, [1.0] * 3)(torch.rand(2, 1, 4, 4))


def test_normalized_model_is_backbone_after_normalize():
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 7))
    norm = Normalize([0.4, 0.5, 0.6], [0.2, 0.3, 0.4])
    model = NormalizedModel(norm, backbone, num_classes=7, in_chans=3, image_size=(4, 4))
    x = torch.rand(2, 3, 4, 4)
    assert torch.equal(model(x), backbone(norm(x)))
    assert (model.num_classes, model.in_chans, model.image_size) == (7, 3, (4, 4))


def test_build_model_puts_data_stats_first():
    model = build_model("mlp", 4, 2, 4, mean=[0.3, 0.7], std=[0.1, 0.2])
    assert isinstance(model.normalize, Normalize)
    assert model.normalize.mean.tolist() == pytest.approx([0.3, 0.7])
    assert model.normalize.std.tolist() == pytest.approx([0.1, 0.2])
    assert (model.num_classes, model.in_chans, model.image_size, model.name) == (4, 2, (4, 4), "mlp")
    x = torch.rand(2, 2, 4, 4)
    assert torch.equal(model(x), model.backbone(model.normalize(x)))
