"""Generated data whose class is decided by a known patch (ground truth for explanations)."""

from __future__ import annotations

import pytest
import torch

from rxlit.data import build_datamodule


def test_mask_covers_the_deciding_region():
    dm = build_datamodule("synthetic", n_train=64, n_val=32, n_test=32, seed=3)
    x, y = next(iter(dm.val_dataloader()))
    mask = dm.ground_truth_mask(y)
    assert x.shape == (32, 1, 8, 8) and mask.shape == (32, 1, 8, 8)
    assert 0.0 <= x.min() and x.max() <= 1.0
    inside = (x * mask).sum((1, 2, 3)) / mask.sum((1, 2, 3))
    outside = (x * (1 - mask)).sum((1, 2, 3)) / (1 - mask).sum((1, 2, 3))
    assert (inside > outside).all()
    # With signal >= noise, every patch pixel is brighter than every background pixel.
    lo = x.masked_fill(mask == 0, 2.0).amin((1, 2, 3))
    hi = x.masked_fill(mask == 1, -1.0).amax((1, 2, 3))
    assert (lo > hi).all()
    # The brightest patch gives the label back.
    scores = torch.einsum("bchw,kchw->bk", x, dm.class_masks)
    assert torch.equal(scores.argmax(1), y)


def test_deterministic_balanced_and_moments():
    a = build_datamodule("synthetic", seed=0)
    b = build_datamodule("synthetic", seed=0)
    c = build_datamodule("synthetic", seed=1)
    xa, ya = a.generate("train")
    assert torch.equal(xa, b.generate("train")[0]) and not torch.equal(xa, c.generate("train")[0])
    assert not torch.equal(xa[:256], a.generate("val")[0])
    assert torch.bincount(ya).tolist() == [256] * 4
    assert abs(xa.mean() - a.mean[0]) < 0.01 and abs(xa.std() - a.std[0]) < 0.01


def test_many_classes_and_channels():
    dm = build_datamodule(
        "synthetic", num_classes=10, in_chans=3, image_size=8, n_train=20, n_val=10, n_test=10
    )
    masks = dm.class_masks
    assert masks.shape == (10, 1, 8, 8) and (masks.sum((1, 2, 3)) == 4).all() and masks.sum(0).max() == 1
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (10, 3, 8, 8) and len(dm.mean) == 3 and len(dm.class_names) == 10


@pytest.mark.parametrize(
    "kwargs, key",
    [({"augment": True}, "data.augment"), ({"image_size": 0}, "data.image_size"),
     ({"num_classes": 17, "image_size": 4}, "data.image_size"), ({"noise": 0.8}, "data.noise")],
)  # fmt: skip
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        build_datamodule("synthetic", **kwargs)
