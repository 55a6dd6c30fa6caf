"""Training data order and worker seeds that are functions of (seed, epoch), so a resumed run replays
exactly the batches an uninterrupted one sees.

torch's default shuffling draws each epoch's permutation from a generator that carries state from
epoch to epoch, and persistent workers carry their random streams across epochs: both make epoch
``k`` depend on everything that ran before it, which a run resumed at epoch ``k`` cannot reproduce.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import RandomSampler

# Distinct streams derived from the same (seed, epoch, rank): data order, worker seeds, global RNGs.
ORDER, WORKERS, GLOBAL = 1, 2, 3


def epoch_seed(seed: int, epoch: int, rank: int = 0, stream: int = GLOBAL, worker: int = 0) -> int:
    """A 32-bit seed that is a pure function of its arguments (numpy's SeedSequence mixing)."""
    words = [int(seed) & 0xFFFFFFFF, int(epoch), int(rank), int(stream), int(worker)]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


class EpochClock:
    """The epoch (and DDP rank) the training loader is serving; shared by the sampler and the
    worker seeding, set by Lightning's ``set_epoch`` and by :class:`rxlit.training.resume.ExactResume`."""

    def __init__(self, seed: int, epoch: int = 0, rank: int = 0):
        self.seed, self.epoch, self.rank = int(seed), int(epoch), int(rank)


class EpochSampler(RandomSampler):
    """A random permutation per epoch drawn from ``(seed, epoch)`` alone.

    A ``RandomSampler``, so under DDP Lightning replaces it with its ``DistributedSampler``
    (shuffled from the global seed and the epoch: also a function of (seed, epoch)).
    """

    def __init__(self, data_source, clock: EpochClock):
        super().__init__(data_source)
        self.clock = clock

    def set_epoch(self, epoch: int) -> None:
        self.clock.epoch = int(epoch)

    def __iter__(self):
        clock = self.clock
        generator = torch.Generator().manual_seed(epoch_seed(clock.seed, clock.epoch, stream=ORDER))
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


class WorkerSeeds:
    """``worker_init_fn``: each loader worker seeds torch, numpy and random from (seed, epoch, rank,
    worker id). Workers are started afresh every epoch (not persistent) so they read the epoch."""

    def __init__(self, clock: EpochClock):
        self.clock = clock

    def __call__(self, worker_id: int) -> None:
        clock = self.clock
        seed = epoch_seed(clock.seed, clock.epoch, clock.rank, stream=WORKERS, worker=worker_id)
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
