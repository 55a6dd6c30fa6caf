"""Exact resume: a run stopped at any moment and resumed from ``last.ckpt`` continues as if never
stopped.

Two things make epoch ``k`` of a run independent of how the process got there:

* the training data order and the loader workers' seeds are functions of (seed, epoch)
  (:mod:`rxlit.data.order`);
* at the start of every training epoch the global random streams (torch, CUDA, numpy, Python) are
  re-seeded from (seed, epoch, rank), so dropout, augmentation in the main process and the
  attacks' random starts draw the same numbers in a resumed run as in an uninterrupted one.

Checkpoints also carry the random states of the moment they were written (restored on load), so a
checkpoint saved in the middle of an epoch continues with the same random numbers up to the next
epoch start. Everything else a resume needs (weights, optimiser, scheduler, loop counters, the
divergence guard, the evaluation callback's totals) is in the checkpoint already.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from lightning.pytorch import Callback

from rxlit.data.order import GLOBAL, epoch_seed


def rng_states() -> dict:
    """The global random states that training draws from."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    # plain tensors and numbers only, so checkpoints still load with torch.load(weights_only=True)
    states = {"torch": torch.get_rng_state(), "python": random.getstate(),
              "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                        "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "numpy" in states:
        n = states["numpy"]
        np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    cuda = states.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def reseed(seed: int) -> None:
    torch.manual_seed(seed)  # every device's generator too
    np.random.seed(seed)
    random.seed(seed)


class ExactResume(Callback):
    """Re-seeds the global random streams at every training epoch start from (seed, epoch, rank),
    points the training loader's clock at the epoch, and stores the random states in checkpoints."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        clock = getattr(trainer.datamodule, "clock", None)
        if clock is not None:  # under DDP Lightning's sampler takes set_epoch: the worker seeds read this
            clock.epoch = epoch
        reseed(epoch_seed(self.seed, epoch, trainer.global_rank, stream=GLOBAL))

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["rng_states"] = rng_states()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])
