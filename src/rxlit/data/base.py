"""The common base of every rxlit data module and the dataset registry.

Conventions (see docs/data.md and docs/theory.md):

* batches are ``(x, y)``: ``x`` float32 in [0, 1] pixel space, shape (B, C, H, W); ``y`` int64;
* data modules never normalise: they expose ``mean``/``std`` and the model normalises;
* every split and every evaluation subset is a pure function of ``seed``.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from rxlit.registry import Registry, read_signature

from .order import EpochClock, EpochSampler, WorkerSeeds
from .splits import random_subset, stratified_subset

DATASETS = Registry("dataset")

SPLITS = ("train", "val", "test")


def check_positive_int(key: str, value: Any, allow_none: bool = False) -> None:
    """Refuse a value of ``data.<key>`` that is not an integer >= 1."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"data.{key} must be a positive integer, got {value!r}")


def check_fraction(key: str, value: Any) -> None:
    """Refuse a value of ``data.<key>`` outside the open interval (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ValueError(f"data.{key} must be a fraction in (0, 1), got {value!r}")


def register_dataset(name: str):
    """Register a data module class under ``name`` in ``DATASETS``, with every option it takes
    (:func:`constructor_options`), read once here."""

    def decorator(cls: type[RxDataModule]) -> type[RxDataModule]:
        return DATASETS.register(name, options=constructor_options(cls))(cls)

    return decorator


def constructor_options(cls: type[RxDataModule]) -> dict[str, Any]:
    """Every constructor option of a data module class with its default: the class's own keyword
    parameters, then, through each ``**common``, those of the classes above it (less the
    ``fixed_options`` the class sets itself)."""
    options: dict[str, Any] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        signature = read_signature(klass.__init__, skip=1)  # after self
        for key, default in signature.options.items():
            options.setdefault(key, default)
        if not signature.any_keyword:
            break
    return {key: value for key, value in options.items() if key not in cls.fixed_options}


class RxDataModule(L.LightningDataModule):
    """A LightningDataModule with fixed seeded splits and cached evaluation subsets.

    Subclasses set the class attributes (or the instance attributes in ``__init__`` when they
    depend on arguments) and implement :meth:`load_splits`; they may override
    :meth:`train_transform` to add augmentation. A subclass with options of its own takes them
    keyword-only plus ``**common``, the options below, which it passes on to ``super().__init__``.

    Args:
        root: folder holding the data set files (unused by generated/bundled data sets).
        batch_size: training batch size.
        eval_batch_size: validation/test batch size (defaults to ``batch_size``).
        num_workers: DataLoader worker processes.
        seed: seed of the splits carved from train, of the shuffling and of ``eval_subset``.
        val_fraction: share of train held out as validation when there is no official val split.
        augment: training augmentation; None picks the data set's usual choice (``default_augment``).
        download: let torchvision download missing files in ``prepare_data``.
        pin_memory: DataLoader ``pin_memory``.
        limit_train, limit_val, limit_test: keep only the first N examples of a split.
    """

    name: ClassVar[str] = ""
    num_classes: int = 0
    in_chans: int = 0
    image_size: int = 0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    class_names: list[str] | None = None
    default_augment: ClassVar[bool] = False
    # Default attack budget in [0, 1] pixel units, mirrored by configs/data/<name>.yaml `attack:`.
    default_attack: ClassVar[dict[str, float]] = {}
    # Options below that a subclass sets itself in its super().__init__ call: not config keys.
    fixed_options: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        root: str = "data",
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        val_fraction: float | None = 0.1,
        augment: bool | None = None,
        download: bool = False,
        pin_memory: bool = False,
        limit_train: int | None = None,
        limit_val: int | None = None,
        limit_test: int | None = None,
    ):
        super().__init__()
        # Records the constructor arguments (of the subclass too) in checkpoints and loggers.
        self.save_hyperparameters()
        check_positive_int("batch_size", batch_size)
        check_positive_int("eval_batch_size", eval_batch_size, allow_none=True)
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"data.num_workers must be an integer >= 0, got {num_workers!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"data.seed must be an integer, got {seed!r}")
        if val_fraction is not None:
            check_fraction("val_fraction", val_fraction)
        for key, value in (
            ("limit_train", limit_train),
            ("limit_val", limit_val),
            ("limit_test", limit_test),
        ):
            check_positive_int(key, value, allow_none=True)
        self.root = str(root)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = num_workers
        self.seed = int(seed)
        self.val_fraction = val_fraction
        self.augment = self.default_augment if augment is None else bool(augment)
        self.download = bool(download)
        self.pin_memory = bool(pin_memory)
        self.limits = {"train": limit_train, "val": limit_val, "test": limit_test}
        self.attack: dict[str, float] = dict(self.default_attack)
        self._splits: dict[str, Any] | None = None
        self.clock: EpochClock | None = None  # the training loader's epoch (set when it is built)
        self._subsets: dict[tuple[int, str, bool], tuple[Tensor, Tensor, Tensor]] = {}

    # -- what a subclass provides -------------------------------------------------------------

    def load_splits(self) -> dict[str, Any]:
        """Return ``{"train", "val", "test"}`` split views (``TensorSplit``/``FolderSplit``)
        without augmentation."""
        raise NotImplementedError

    def train_transform(self):
        """The transform of the training split when ``augment`` is on (None: no augmentation)."""
        return None

    # -- Lightning hooks ----------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Load all three splits once (they are small or memory-mapped views) and apply limits."""
        if self._splits is not None:
            return
        splits = self.load_splits()
        self._splits = {split: splits[split].take(self.limits[split]) for split in SPLITS}

    def split(self, split: str, train_view: bool = False):
        """The dataset of ``split``; ``train_view`` adds training augmentation to ``train``."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        self.setup()
        dataset = self._splits[split]
        transform = self.train_transform() if train_view and split == "train" and self.augment else None
        return dataset.with_transform(transform) if transform is not None else dataset

    def _loader(self, dataset, batch_size: int, shuffle: bool) -> DataLoader:
        sampler = worker_init = generator = None
        if shuffle:  # epoch k's order and augmentation depend on (seed, k) only: exact resume
            trainer = getattr(self, "trainer", None)
            # the epoch Lightning will pass to set_epoch (current_epoch lags it while a resume loads)
            epoch = trainer.fit_loop.epoch_progress.current.processed if trainer else 0
            self.clock = EpochClock(self.seed, epoch, trainer.global_rank if trainer else 0)
            sampler, worker_init = EpochSampler(dataset, self.clock), WorkerSeeds(self.clock)
            # the loader draws its workers' base seed from this, not from the global RNG
            generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            generator=generator,
            worker_init_fn=worker_init,
            drop_last=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            # persistent workers would carry their random streams from epoch to epoch
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.split("train", train_view=True), self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.split("val"), self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.split("test"), self.eval_batch_size, shuffle=False)

    # -- fixed evaluation subsets -------------------------------------------------------------

    def eval_subset(
        self, n: int, split: str = "val", stratified: bool = True
    ) -> tuple[Tensor, Tensor, Tensor]:
        """A fixed subset ``(x, y, index)`` of ``n`` examples of ``split``, without augmentation.

        ``index`` is each example's position in the split (sorted ascending). A split smaller
        than ``n`` is returned whole, with a warning. With
        ``stratified`` the class counts follow the split's class proportions (largest
        remainder); otherwise the examples are a seeded uniform sample. The result depends only
        on ``seed``, ``n`` and the split, and is cached: call it every epoch.
        """
        key = (int(n), split, bool(stratified))
        if key not in self._subsets:
            dataset = self.split(split)
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"eval_subset needs a positive number of examples, got {n!r}")
            if n > len(dataset):
                # A sweep may shrink a split (limit_val) below the evaluation size: use all of it.
                warnings.warn(
                    f"eval_subset asks for {n} examples but the {split} split has {len(dataset)}; using all of them",
                    stacklevel=2,
                )
                n = len(dataset)
            labels = dataset.targets.numpy()
            pick = (
                stratified_subset(labels, n, self.seed)
                if stratified
                else random_subset(len(labels), n, self.seed)
            )
            index = torch.as_tensor(pick, dtype=torch.int64)
            xs, ys = zip(*(dataset[int(i)] for i in index))
            self._subsets[key] = (torch.stack(xs), torch.stack(ys).to(torch.int64), index)
        return self._subsets[key]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={self.root!r}, num_classes={self.num_classes}, in_chans={self.in_chans}, "
            f"image_size={self.image_size}, batch_size={self.batch_size}, seed={self.seed}, augment={self.augment})"
        )
