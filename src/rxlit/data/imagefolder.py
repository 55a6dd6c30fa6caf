"""ImageNet-style folders of image files: ``root/train/<class>/*``, optional ``val`` and ``test``."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from PIL import Image
from torchvision import transforms as T
from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

from .base import RxDataModule, check_fraction, check_positive_int, register_dataset
from .datasets import FolderSplit
from .splits import stratified_split

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Luma-weighted ImageNet statistics for single-channel inputs (timm's choice for in_chans=1).
IMAGENET_GRAY_MEAN = (0.449,)
IMAGENET_GRAY_STD = (0.226,)
MAX_UPSAMPLE = 4  # data.image_size may be at most this many times the files' size
IMAGEFOLDER_ATTACK = {"eps": 4 / 255, "step": 1 / 255, "steps": 7, "eps_l2": 3.0, "step_l2": 0.5}
LAYOUT = "<root>/train/<class>/<image>, optional <root>/val/<class>/... and <root>/test/<class>/..."


def find_classes(folder: str) -> list[str]:
    """Sorted sub-folder names of ``folder`` (torchvision ImageFolder's class order)."""
    return sorted(
        entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith(".")
    )


@register_dataset("imagefolder")
class ImageFolderDataModule(RxDataModule):
    """Class-per-folder image files, resized to ``image_size`` x ``image_size``.

    Classes are the sub-folders of ``root/train`` (sorted), read at construction so that
    ``num_classes`` and ``class_names`` are known before ``setup``. ``root/val`` is the
    validation split when present, else a stratified ``val_fraction`` of train; ``root/test`` is
    the test split when present, else the validation split (the ImageNet convention).

    Eval transform: resize the short side to ``image_size / crop_pct`` then center crop.
    Train transform with ``augment`` (on by default): random resized crop + horizontal flip.
    Images are converted to RGB (``in_chans=3``) or grayscale (``in_chans=1``).
    ``mean``/``std`` default to ImageNet statistics.
    """

    default_augment = True
    default_attack = IMAGEFOLDER_ATTACK

    def __init__(
        self,
        *,
        image_size: int | None = None,
        in_chans: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        crop_pct: float = 0.875,
        **common: Any,
    ):
        super().__init__(**common)
        check_positive_int("image_size", image_size, allow_none=True)
        if in_chans not in (1, 3):
            raise ValueError(f"data.in_chans must be 1 (grayscale) or 3 (RGB), got {in_chans!r}")
        if not 0.0 < crop_pct <= 1.0:
            raise ValueError(f"data.crop_pct must be in (0, 1], got {crop_pct!r}")
        self.in_chans = int(in_chans)
        self.crop_pct = float(crop_pct)
        self.mean = self._stats("mean", mean, IMAGENET_MEAN if in_chans == 3 else IMAGENET_GRAY_MEAN)
        self.std = self._stats("std", std, IMAGENET_STD if in_chans == 3 else IMAGENET_GRAY_STD)
        if any(s <= 0 for s in self.std):
            raise ValueError(f"data.std must be positive, got {self.std}")
        self.class_names = find_classes(self._folder("train", required=True))
        if not self.class_names:
            raise FileNotFoundError(
                f"imagefolder: no class sub-folders in '{self._folder('train')}'; expected {LAYOUT}"
            )
        self.num_classes = len(self.class_names)
        self.image_size = self._image_size(image_size)

    def _image_size(self, requested: int | None) -> int:
        """The files' own size (the short side of the first training image) unless given; an explicit
        size more than MAX_UPSAMPLE times the files' is refused (it only blows up the model)."""
        samples = self._samples(self._folder("train", required=True))
        if not samples:
            raise FileNotFoundError(f"imagefolder: no images under '{self._folder('train')}'; expected {LAYOUT}")
        with Image.open(samples[0][0]) as image:
            native = min(image.size)
        if requested is None:
            return int(native)
        if requested > MAX_UPSAMPLE * native:
            raise ValueError(
                f"data.image_size={requested} would upsample the {native}x{native} images of '{self.root}' "
                f"{requested / native:.0f}x (more than {MAX_UPSAMPLE}x): the model grows and nothing is gained. "
                f"Fix: data.image_size=null (the files' size, {native}) or a size up to {MAX_UPSAMPLE * native}")
        return int(requested)

    def _stats(self, key: str, value, default: tuple[float, ...]) -> tuple[float, ...]:
        stats = tuple(float(v) for v in (default if value is None else value))
        if len(stats) != self.in_chans:
            raise ValueError(f"data.{key} needs {self.in_chans} values (data.in_chans), got {stats}")
        return stats

    def _folder(self, split: str, required: bool = False) -> str | None:
        folder = os.path.join(self.root, split)
        if os.path.isdir(folder):
            return folder
        if required:
            raise FileNotFoundError(
                f"imagefolder: folder '{os.path.abspath(folder)}' not found (data.root='{self.root}'). "
                f"Expected layout: {LAYOUT}. Copy the images there or point data.root at the folder holding 'train'."
            )
        return None

    def _samples(self, folder: str) -> list[tuple[str, int]]:
        classes = find_classes(folder)
        if classes != self.class_names:
            raise ValueError(
                f"imagefolder: classes of '{folder}' {classes} differ from those of train {self.class_names}"
            )
        return make_dataset(folder, {c: i for i, c in enumerate(classes)}, extensions=IMG_EXTENSIONS)

    def _mode(self) -> str:
        return "RGB" if self.in_chans == 3 else "L"

    def eval_transform(self):
        resize = int(math.floor(self.image_size / self.crop_pct))
        return T.Compose([T.Resize(resize), T.CenterCrop(self.image_size), T.ToTensor()])

    def train_transform(self):
        return T.Compose([T.RandomResizedCrop(self.image_size), T.RandomHorizontalFlip(), T.ToTensor()])

    def load_splits(self) -> dict[str, FolderSplit]:
        mode, transform = self._mode(), self.eval_transform()
        train_samples = self._samples(self._folder("train", required=True))
        val_folder, test_folder = self._folder("val"), self._folder("test")
        if val_folder is not None:
            train = FolderSplit(train_samples, mode, transform)
            val = FolderSplit(self._samples(val_folder), mode, transform)
        else:
            check_fraction("val_fraction", self.val_fraction)
            labels = [label for _, label in train_samples]
            rest, (held_out,) = stratified_split(labels, [self.val_fraction], self.seed)
            train = FolderSplit(train_samples, mode, transform, rest)
            val = FolderSplit(train_samples, mode, transform, held_out)
        test = FolderSplit(self._samples(test_folder), mode, transform) if test_folder is not None else val
        return {"train": train, "val": val, "test": test}
