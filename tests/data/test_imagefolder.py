"""ImageNet-style class folders of PNG files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rxlit.data import build_datamodule

CLASSES = ["cat", "dog", "emu"]


def write_pngs(root, split: str, per_class: int, size: int = 12) -> None:
    for k, name in enumerate(CLASSES):
        folder = root / split / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((size, size, 3), 40 * k + i, dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")


def test_train_and_val_folders(tmp_path):
    write_pngs(tmp_path, "train", 4)
    write_pngs(tmp_path, "val", 2)
    dm = build_datamodule("imagefolder", root=str(tmp_path), image_size=8, batch_size=16, augment=False)
    assert dm.class_names == CLASSES and dm.num_classes == 3 and dm.mean == (0.485, 0.456, 0.406)
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (6, 3, 8, 8) and x.dtype == torch.float32 and y.tolist() == [0, 0, 1, 1, 2, 2]
    # A flat image stays flat through resize + center crop: value / 255.
    assert torch.allclose(x[2], torch.full((3, 8, 8), 40 / 255), atol=1e-6)
    assert len(dm.split("train")) == 12 and dm.split("test") is dm.split("val")


def test_val_carved_from_train_grayscale_and_augmented(tmp_path):
    write_pngs(tmp_path, "train", 10)
    dm = build_datamodule(
        "imagefolder", root=str(tmp_path), image_size=6, in_chans=1, val_fraction=0.2, batch_size=64
    )
    assert dm.augment and dm.mean == (0.449,)
    assert sorted(dm.split("val").targets.tolist()) == [0, 0, 1, 1, 2, 2]
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (24, 1, 6, 6) and 0.0 <= x.min() and x.max() <= 1.0


def test_missing_folder_and_bad_stats(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "train")):
        build_datamodule("imagefolder", root=str(tmp_path))
    write_pngs(tmp_path, "train", 1)
    with pytest.raises(ValueError, match="data.mean"):
        build_datamodule("imagefolder", root=str(tmp_path), mean=[0.5])
