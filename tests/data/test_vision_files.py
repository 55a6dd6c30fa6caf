"""torchvision data sets loaded from tiny files written in their real on-disk formats."""

from __future__ import annotations

import os

import pytest
import torch
import torchvision
from data_fakes import CIFAR_TEST, cifar_pattern, mnist_pattern

from rxlit.data import build_datamodule


def expected(pattern) -> torch.Tensor:
    return torch.from_numpy(pattern).to(torch.float32) / 255


def test_cifar10_pixels_and_layout_round_trip(cifar10_root):
    dm = build_datamodule(
        "cifar10", root=str(cifar10_root), val_fraction=0.2, batch_size=8, eval_batch_size=8
    )
    assert (dm.num_classes, dm.in_chans, dm.image_size) == (10, 3, 32) and dm.augment
    xs, ys = zip(*dm.test_dataloader())
    x, y = torch.cat(xs), torch.cat(ys)
    assert x.shape == (CIFAR_TEST, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    # CHW exactly as written (red plane first), value/255 exactly.
    assert torch.equal(x, expected(cifar_pattern(CIFAR_TEST, 1000)))
    assert y.tolist() == [k % 10 for k in range(CIFAR_TEST)]
    sizes = [len(dm.split(s)) for s in ("train", "val", "test")]
    assert sizes == [40, 10, 20] and sorted(dm.split("val").targets.tolist()) == list(range(10))
    # Train and val examples are the original train images at their indices.
    train_images = expected(cifar_pattern(50, 0))
    x_val, y_val, index = dm.eval_subset(10)
    positions = dm.split("val").indices[index]
    assert torch.equal(x_val, train_images[positions]) and torch.equal(y_val, positions % 10)


def test_cifar10_augmented_train_loader(cifar10_root):
    dm = build_datamodule("cifar10", root=str(cifar10_root), batch_size=64)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (45, 3, 32, 32) and 0.0 <= x.min() and x.max() <= 1.0


def test_torchvision_alone_refuses_the_files_we_load(cifar10_root):
    # The md5 check is why rxlit reads local files through a lenient subclass.
    with pytest.raises(RuntimeError, match="corrupted"):
        torchvision.datasets.CIFAR10(str(cifar10_root), train=False)


def test_cifar100_fine_labels(tmp_path):
    from data_fakes import write_pickle

    folder = tmp_path / "cifar-100-python"
    for name, n in (("train", 20), ("test", 10)):
        data = cifar_pattern(n, 0).reshape(n, 3072)
        write_pickle(
            folder / name,
            {"data": data, "fine_labels": [k % 100 for k in range(n)], "coarse_labels": [0] * n},
        )
    dm = build_datamodule("cifar100", root=str(tmp_path), val_fraction=0.5)
    x, y = next(iter(dm.test_dataloader()))
    assert dm.num_classes == 100 and len(dm.class_names) == 100
    assert torch.equal(x, expected(cifar_pattern(10, 0))) and y.tolist() == list(range(10))


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_idx_files(mnist_writer, name, folder):
    root = mnist_writer(folder)
    dm = build_datamodule(name, root=str(root), batch_size=100)
    assert (dm.num_classes, dm.in_chans, dm.image_size, dm.augment) == (10, 1, 28, False)
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (20, 1, 28, 28) and torch.equal(x[:, 0], expected(mnist_pattern(20, 500)))
    assert y.tolist() == [k % 10 for k in range(20)]
    assert [len(dm.split(s)) for s in ("train", "val", "test")] == [36, 4, 20]


def test_svhn_mat_files(svhn_root):
    dm = build_datamodule("svhn", root=str(svhn_root), augment=False, batch_size=100)
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (10, 3, 32, 32) and torch.equal(x, expected(cifar_pattern(10, 100)))
    assert y.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]  # label 10 on disk is digit 0


@pytest.mark.parametrize(
    "name, expects",
    [("cifar10", ["cifar-10-batches-py", "data_batch_1..5", "test_batch"]),
     ("cifar100", ["cifar-100-python"]),
     ("mnist", ["MNIST/raw", "train-images-idx3-ubyte"]),
     ("svhn", ["train_32x32.mat"])],
)  # fmt: skip
def test_missing_files_name_the_folder_and_the_fix(tmp_path, name, expects):
    root = tmp_path / "nowhere"
    dm = build_datamodule(name, root=str(root))
    with pytest.raises(FileNotFoundError) as err:
        dm.setup("fit")
    message = str(err.value)
    assert os.path.abspath(root) in message and "data.download=true" in message and "copy" in message
    for text in expects:
        assert text in message


def test_download_only_fetches_missing_files(cifar10_root, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("rxlit.data.vision.CIFAR10DataModule.fetch", lambda self: calls.append(self.root))
    build_datamodule("cifar10", root=str(cifar10_root), download=True).prepare_data()
    assert calls == []

    def offline(self):
        raise OSError("no network")

    monkeypatch.setattr("rxlit.data.vision.CIFAR10DataModule.fetch", offline)
    with pytest.raises(RuntimeError, match="download into .*empty.* failed \\(no network\\)"):
        build_datamodule("cifar10", root=str(tmp_path / "empty"), download=True).prepare_data()
