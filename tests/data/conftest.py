"""Fixtures writing tiny data sets in their real on-disk formats into tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_fakes import (
    CIFAR_PER_BATCH,
    CIFAR_TEST,
    cifar_pattern,
    mnist_pattern,
    write_idx_images,
    write_idx_labels,
    write_pickle,
)


@pytest.fixture
def cifar10_root(tmp_path) -> Path:
    """<tmp>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}, labels i % 10.

    Rows are the real layout: 3072 bytes = the 32x32 red plane, then green, then blue.
    """
    folder = tmp_path / "cifar-10-batches-py"
    for b in range(5):
        offset = b * CIFAR_PER_BATCH
        data = cifar_pattern(CIFAR_PER_BATCH, offset).reshape(CIFAR_PER_BATCH, 3072)
        labels = [(offset + k) % 10 for k in range(CIFAR_PER_BATCH)]
        write_pickle(
            folder / f"data_batch_{b + 1}", {"batch_label": f"batch {b + 1}", "data": data, "labels": labels}
        )
    test = cifar_pattern(CIFAR_TEST, 1000).reshape(CIFAR_TEST, 3072)
    write_pickle(folder / "test_batch", {"data": test, "labels": [k % 10 for k in range(CIFAR_TEST)]})
    write_pickle(folder / "batches.meta", {"label_names": [f"c{k}" for k in range(10)], "num_vis": 3072})
    return tmp_path


@pytest.fixture
def mnist_writer(tmp_path):
    """Writes <tmp>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (uncompressed idx)."""

    def write(folder: str = "MNIST", n_train: int = 40, n_test: int = 20) -> Path:
        raw = tmp_path / folder / "raw"
        for prefix, n, offset in (("train", n_train, 0), ("t10k", n_test, 500)):
            write_idx_images(raw / f"{prefix}-images-idx3-ubyte", mnist_pattern(n, offset))
            write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
        return tmp_path

    return write


@pytest.fixture
def svhn_root(tmp_path) -> Path:
    """<tmp>/{train,test}_32x32.mat with X (32, 32, 3, N) uint8 and y (N, 1) in 1..10 (10 = digit 0)."""
    from scipy.io import savemat

    for name, n, offset in (("train", 30, 0), ("test", 10, 100)):
        chw = cifar_pattern(n, offset)
        savemat(
            tmp_path / f"{name}_32x32.mat",
            {"X": chw.transpose(2, 3, 1, 0), "y": (np.arange(n) % 10 + 1)[:, None]},
        )
    return tmp_path
