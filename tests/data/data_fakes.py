"""Writers of tiny data set files in the real on-disk formats (CIFAR pickles, idx, SVHN .mat)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR_PER_BATCH = 10  # 5 train batches -> 50 train images, 5 per class
CIFAR_TEST = 20


def cifar_pattern(n: int, offset: int) -> np.ndarray:
    """uint8 images (n, 3, 32, 32) whose value depends asymmetrically on (image, c, h, w)."""
    i, c, h, w = np.meshgrid(np.arange(n) + offset, np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    return ((i * 7 + c * 50 + h * 3 + w) % 256).astype(np.uint8)


def write_pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def write_idx_images(path: Path, images: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    n, rows, cols = images.shape
    path.write_bytes(struct.pack(">IIII", 2051, n, rows, cols) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def mnist_pattern(n: int, offset: int) -> np.ndarray:
    i, h, w = np.meshgrid(np.arange(n) + offset, np.arange(28), np.arange(28), indexing="ij")
    return ((i * 11 + h * 5 + w) % 256).astype(np.uint8)
