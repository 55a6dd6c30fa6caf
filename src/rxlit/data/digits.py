"""scikit-learn's bundled 8x8 handwritten digits: the default data set (no files, no download)."""

from __future__ import annotations

from typing import Any

import torch
from sklearn.datasets import load_digits

from .base import RxDataModule, check_fraction, register_dataset
from .datasets import RandomCropFlip, TensorSplit
from .splits import stratified_split

# The budget scaled to 8x8 digits: pixel values are coarse (multiples of 1/16) and an 8x8 digit
# has 64 pixels, so MNIST's eps 0.3 is close to a faint stroke's contrast. See docs/data.md.
DIGITS_ATTACK = {"eps": 0.1, "step": 0.025, "steps": 7, "eps_l2": 0.5, "step_l2": 0.125}


@register_dataset("digits")
class DigitsDataModule(RxDataModule):
    """The 1797 images of ``sklearn.datasets.load_digits``, values /16 into [0, 1].

    A fixed stratified train/val/test split is drawn from ``seed`` (70/15/15 by default:
    1257/270/270). Everything lives in memory as tensors. Augmentation (off by default) is a
    random crop after 1-pixel zero padding; no flip, since a mirrored digit is another glyph.
    """

    num_classes = 10
    in_chans = 1
    image_size = 8
    # Pixel mean and std of all 1797 images after /16.
    mean = (0.3053,)
    std = (0.3760,)
    class_names = [str(k) for k in range(10)]
    default_augment = False
    default_attack = DIGITS_ATTACK

    def __init__(self, *, val_fraction: float = 0.15, test_fraction: float = 0.15, **common: Any):
        super().__init__(val_fraction=val_fraction, **common)
        check_fraction("test_fraction", test_fraction)
        if val_fraction + test_fraction >= 1.0:
            raise ValueError(
                f"data.val_fraction + data.test_fraction must be < 1, got {val_fraction} + {test_fraction}"
            )
        self.test_fraction = test_fraction

    def load_splits(self) -> dict[str, TensorSplit]:
        bunch = load_digits()
        images = torch.as_tensor(bunch.images, dtype=torch.float32).div(16.0).unsqueeze(1)
        labels = torch.as_tensor(bunch.target, dtype=torch.int64)
        train, (val, test) = stratified_split(
            bunch.target, [self.val_fraction, self.test_fraction], self.seed
        )
        return {
            name: TensorSplit(images, labels, idx)
            for name, idx in (("train", train), ("val", val), ("test", test))
        }

    def train_transform(self):
        return RandomCropFlip(padding=1, flip=False)
