"""CIFAR-10/100, MNIST, Fashion-MNIST and SVHN, read from ``root`` through torchvision.

torchvision parses the real on-disk formats; the pixels are then held in memory as one uint8
tensor (N, C, H, W) per official split and divided by 255 on access (what ``ToTensor`` does),
which is faster than a PIL round trip per image. The official test split is the test set; the
validation set is a seeded stratified ``val_fraction`` of the official train split.

torchvision's CIFAR and SVHN classes verify md5 sums of the files every time they load. Files
that are present locally are read here without that check (a copied or re-packed data set must
still load); ``download=true`` goes through torchvision's own download, which verifies the
archive's md5.
"""

from __future__ import annotations

import os
import pickle
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor
from torchvision import datasets as tvd

from .base import RxDataModule, register_dataset
from .datasets import RandomCropFlip, TensorSplit
from .splits import stratified_split

CIFAR_ATTACK = {"eps": 8 / 255, "step": 2 / 255, "steps": 7, "eps_l2": 0.5, "step_l2": 0.125}
MNIST_ATTACK = {"eps": 0.3, "step": 0.01, "steps": 40, "eps_l2": 2.0, "step_l2": 0.25}

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100_CLASSES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly "
    "camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup "
    "dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower "
    "leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid "
    "otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road "
    "rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower "
    "sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale "
    "willow_tree wolf woman worm"
).split()
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DIGIT_CLASSES = [str(k) for k in range(10)]
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _files_present(folder: str, names) -> bool:
    return all(os.path.isfile(os.path.join(folder, name)) for name in names)


class _LocalCIFAR10(tvd.CIFAR10):
    """torchvision's CIFAR-10 reader without the md5 check of local files."""

    def _check_integrity(self) -> bool:
        names = [name for name, _ in self.train_list + self.test_list]
        return _files_present(os.path.join(self.root, self.base_folder), names)

    def _load_meta(self) -> None:
        # The label names are known constants; the meta file is optional here.
        path = os.path.join(self.root, self.base_folder, self.meta["filename"])
        self.classes = []
        if os.path.isfile(path):
            with open(path, "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}


class _LocalCIFAR100(_LocalCIFAR10, tvd.CIFAR100):
    """torchvision's CIFAR-100 reader (fine labels) without the md5 check of local files."""


class _LocalSVHN(tvd.SVHN):
    """torchvision's SVHN reader without the md5 check of local files."""

    def _check_integrity(self) -> bool:
        return os.path.isfile(os.path.join(self.root, self.filename))


class TorchvisionDataModule(RxDataModule):
    """A torchvision data set held in memory as uint8 tensors, with a stratified val carve-out.

    Subclasses name the files torchvision expects (``required``, relative to ``root``), describe
    the layout for error messages, and implement :meth:`read` and :meth:`fetch`.
    """

    required: ClassVar[tuple[str, ...]] = ()
    layout: ClassVar[str] = ""
    crop_padding: ClassVar[int] = 0
    flip: ClassVar[bool] = False

    def read(self, train: bool) -> tuple[Tensor, Tensor]:
        """Images uint8 (N, C, H, W) and labels int64 of the official train or test split."""
        raise NotImplementedError

    def fetch(self) -> None:
        """Download both official splits with torchvision (md5-checked)."""
        raise NotImplementedError

    def missing_files(self) -> list[str]:
        return [name for name in self.required if not os.path.isfile(os.path.join(self.root, name))]

    def check_files(self) -> None:
        """Raise FileNotFoundError naming the folder, the expected files and how to get them."""
        missing = self.missing_files()
        if not missing:
            return
        root = os.path.abspath(self.root)
        top = self.required[0].split("/")[0] if "/" in self.required[0] else None
        copy_hint = f"copy the '{top}' folder into it" if top else "copy the files into it"
        raise FileNotFoundError(
            f"{self.name}: data set files not found in folder '{root}' (data.root).\n"
            f"  torchvision expects: {self.layout}\n"
            f"  missing: {', '.join(missing)}\n"
            f"  fix: run once with data.download=true on a machine with network access, or {copy_hint}, "
            f"or point data.root (or $RXLIT_DATA) at the folder that holds them."
        )

    def prepare_data(self) -> None:
        if self.download and self.missing_files():
            try:
                self.fetch()
            except Exception as err:  # no network, proxy, bad mirror: say where it was going
                raise RuntimeError(
                    f"{self.name}: download into '{os.path.abspath(self.root)}' failed ({err}). "
                    f"Download on a machine with network access and copy the files: {self.layout}"
                ) from err

    def load_splits(self) -> dict[str, TensorSplit]:
        if self.download:  # setup() called without a Trainer, so prepare_data() may not have run
            self.prepare_data()
        self.check_files()
        train_x, train_y = self.read(train=True)
        test_x, test_y = self.read(train=False)
        train, (val,) = stratified_split(train_y.numpy(), [self.val_fraction], self.seed)
        return {
            "train": TensorSplit(train_x, train_y, train),
            "val": TensorSplit(train_x, train_y, val),
            "test": TensorSplit(test_x, test_y),
        }

    def train_transform(self):
        return RandomCropFlip(self.crop_padding, self.flip)


def _from_hwc(data: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(data)).permute(0, 3, 1, 2).contiguous()


class Colour32DataModule(TorchvisionDataModule):
    """What CIFAR-10/100 and SVHN share: 3x32x32 colour images, 10 classes unless a subclass says
    otherwise, the CIFAR PGD budget and, by default, a random crop after 4-pixel zero padding."""

    num_classes = 10
    in_chans = 3
    image_size = 32
    default_augment = True
    default_attack = CIFAR_ATTACK
    crop_padding = 4


@register_dataset("cifar10")
class CIFAR10DataModule(Colour32DataModule):
    """CIFAR-10: 50k train (5k held out as val by default) / 10k test, 3x32x32.

    Augmentation (on by default): random crop after 4-pixel zero padding + horizontal flip.
    ``mean``/``std`` are the values of the robustness library used by Tan & Tian.
    """

    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2023, 0.1994, 0.2010)
    class_names = CIFAR10_CLASSES
    flip = True
    reader = _LocalCIFAR10
    required = tuple(
        f"cifar-10-batches-py/{n}" for n in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    )
    layout = "<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta (optional)}"

    def read(self, train: bool) -> tuple[Tensor, Tensor]:
        ds = self.reader(self.root, train=train, download=False)
        return _from_hwc(ds.data), torch.as_tensor(ds.targets, dtype=torch.int64)

    def fetch(self) -> None:
        for train in (True, False):
            tvd.CIFAR10(self.root, train=train, download=True)  # torchvision's class checks md5 sums


@register_dataset("cifar100")
class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100 (fine labels): 50k train / 10k test, 3x32x32, CIFAR augmentation."""

    num_classes = 100
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
    class_names = CIFAR100_CLASSES
    reader = _LocalCIFAR100
    required = ("cifar-100-python/train", "cifar-100-python/test")
    layout = "<root>/cifar-100-python/{train, test, meta (optional)}"

    def fetch(self) -> None:
        for train in (True, False):
            tvd.CIFAR100(self.root, train=train, download=True)


@register_dataset("mnist")
class MNISTDataModule(TorchvisionDataModule):
    """MNIST: 60k train (6k held out as val by default) / 10k test, 1x28x28.

    No augmentation by default (Madry et al.'s recipe); ``augment`` adds a random crop after
    2-pixel zero padding, never a flip.
    """

    num_classes = 10
    in_chans = 1
    image_size = 28
    mean = (0.1307,)
    std = (0.3081,)
    class_names = DIGIT_CLASSES
    default_augment = False
    default_attack = MNIST_ATTACK
    crop_padding = 2
    flip = False
    reader = tvd.MNIST  # the class name is the folder name: <root>/MNIST/raw
    required = tuple(f"MNIST/raw/{n}" for n in MNIST_FILES)
    layout = "<root>/MNIST/raw/{" + ", ".join(MNIST_FILES) + "} (uncompressed idx files)"

    def read(self, train: bool) -> tuple[Tensor, Tensor]:
        ds = self.reader(self.root, train=train, download=False)
        return ds.data.unsqueeze(1).contiguous(), ds.targets.to(torch.int64)

    def fetch(self) -> None:
        for train in (True, False):
            self.reader(self.root, train=train, download=True)


@register_dataset("fashion_mnist")
class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST: same format, sizes and defaults as MNIST, under ``<root>/FashionMNIST/raw``."""

    mean = (0.2860,)
    std = (0.3530,)
    class_names = FASHION_CLASSES
    reader = tvd.FashionMNIST
    required = tuple(f"FashionMNIST/raw/{n}" for n in MNIST_FILES)
    layout = "<root>/FashionMNIST/raw/{" + ", ".join(MNIST_FILES) + "} (uncompressed idx files)"


@register_dataset("svhn")
class SVHNDataModule(Colour32DataModule):
    """SVHN (cropped digits): 73,257 train / 26,032 test, 3x32x32; label 10 is mapped to 0.

    The ``extra`` split is not used. Augmentation (on by default) is a random crop after 4-pixel
    zero padding without flip: a mirrored digit is another glyph.
    """

    mean = (0.4377, 0.4438, 0.4728)
    std = (0.1980, 0.2010, 0.1970)
    class_names = DIGIT_CLASSES
    flip = False
    required = ("train_32x32.mat", "test_32x32.mat")
    layout = "<root>/{train_32x32.mat, test_32x32.mat}"

    def read(self, train: bool) -> tuple[Tensor, Tensor]:
        ds = _LocalSVHN(self.root, split="train" if train else "test", download=False)
        return torch.from_numpy(np.ascontiguousarray(ds.data)), torch.as_tensor(ds.labels, dtype=torch.int64)

    def fetch(self) -> None:
        for split in ("train", "test"):
            tvd.SVHN(self.root, split=split, download=True)
