"""The default data set: scikit-learn's 8x8 digits with a fixed stratified split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rxlit.data import DigitsDataModule, build_datamodule

N_DIGITS = 1797


@pytest.fixture(scope="module")
def dm():
    module = build_datamodule("digits", seed=0, batch_size=64)
    module.setup("fit")
    return module


def proportions(labels: torch.Tensor) -> np.ndarray:
    return np.bincount(labels.numpy(), minlength=10) / len(labels)


def test_attributes_before_setup():
    module = DigitsDataModule()
    assert (module.num_classes, module.in_chans, module.image_size) == (10, 1, 8)
    assert len(module.mean) == len(module.std) == 1 and module.class_names[3] == "3"


def test_batches_shape_dtype_and_range(dm):
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    xs = torch.cat([x for x, _ in dm.val_dataloader()] + [x for x, _ in dm.train_dataloader()])
    assert xs.min() >= 0.0 and xs.max() == 1.0
    # Values are the raw 0..16 counts divided by 16.
    assert torch.equal(xs * 16, (xs * 16).round())


def test_split_sizes_and_stratification(dm):
    sizes = [len(dm.split(s)) for s in ("train", "val", "test")]
    assert sizes == [1257, 270, 270] and sum(sizes) == N_DIGITS
    everything = torch.cat([dm.split(s).targets for s in ("train", "val", "test")])
    whole = proportions(everything)
    for s in ("train", "val", "test"):
        assert np.abs(proportions(dm.split(s).targets) - whole).max() < 0.02, s
    # The three splits are disjoint and cover the data set.
    indices = torch.cat([dm.split(s).indices for s in ("train", "val", "test")])
    assert torch.equal(indices.sort().values, torch.arange(N_DIGITS))


def test_same_seed_same_split_other_seed_other_split(dm):
    again = build_datamodule("digits", seed=0)
    other = build_datamodule("digits", seed=1)
    for s in ("train", "val", "test"):
        assert torch.equal(again.split(s).indices, dm.split(s).indices)
    assert not torch.equal(other.split("val").indices.sort().values, dm.split("val").indices.sort().values)


def test_eval_subset_stratified_stable_and_cached(dm):
    x, y, index = dm.eval_subset(100)
    assert x.shape == (100, 1, 8, 8) and y.dtype == torch.int64
    assert torch.bincount(y, minlength=10).tolist() == [10] * 10
    val_x, val_y = zip(*(dm.split("val")[int(i)] for i in index))
    assert torch.equal(torch.stack(val_x), x) and torch.equal(torch.stack(val_y), y)
    assert dm.eval_subset(100)[0] is x  # cached
    fresh = build_datamodule("digits", seed=0)
    for a, b in zip(fresh.eval_subset(100), (x, y, index)):
        assert torch.equal(a, b)
    _, y_test, _ = dm.eval_subset(50, split="test", stratified=False)
    assert len(y_test) == 50
    with pytest.warns(UserWarning, match="271"):
        assert len(dm.eval_subset(271)[2]) == 270
    with pytest.raises(ValueError, match="positive"):
        dm.eval_subset(0)


def test_train_shuffle_is_seeded_and_eval_is_ordered(dm):
    first = next(iter(build_datamodule("digits", seed=0, batch_size=64).train_dataloader()))[1]
    assert torch.equal(first, next(iter(dm.train_dataloader()))[1])
    _, y = next(iter(dm.val_dataloader()))
    assert torch.equal(y, dm.split("val").targets[:64])


def test_limits_and_augmentation():
    module = build_datamodule(
        "digits", limit_train=100, limit_val=30, augment=True, batch_size=1000, eval_batch_size=7
    )
    x, y = next(iter(module.train_dataloader()))
    assert x.shape == (100, 1, 8, 8) and 0.0 <= x.min() and x.max() <= 1.0
    assert len(module.val_dataloader().dataset) == 30 and module.val_dataloader().batch_size == 7
    # Augmentation touches the training loader only; eval subsets of train stay clean.
    clean = build_datamodule("digits", limit_train=100)
    assert torch.equal(module.eval_subset(20, split="train")[0], clean.eval_subset(20, split="train")[0])
