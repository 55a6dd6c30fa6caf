"""Data modules: batches ``(x, y)`` with ``x`` float32 in [0, 1], (B, C, H, W); ``y`` int64.

Data modules never normalise (the model's first layer does, with ``dm.mean``/``dm.std``).
Build one by name with :func:`build_datamodule` or from a Hydra ``data`` config with
:func:`datamodule_from_config`. See docs/data.md.
"""

from .base import DATASETS, RxDataModule, register_dataset
from .datasets import FolderSplit, RandomCropFlip, TensorSplit
from .digits import DigitsDataModule
from .factory import build_datamodule, datamodule_from_config, valid_keys
from .imagefolder import ImageFolderDataModule
from .synthetic import SyntheticDataModule, patch_masks
from .vision import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
    SVHNDataModule,
    TorchvisionDataModule,
)

__all__ = [
    "DATASETS",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "FolderSplit",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "RandomCropFlip",
    "RxDataModule",
    "SVHNDataModule",
    "SyntheticDataModule",
    "TensorSplit",
    "TorchvisionDataModule",
    "build_datamodule",
    "datamodule_from_config",
    "patch_masks",
    "register_dataset",
    "valid_keys",
]
