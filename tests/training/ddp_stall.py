"""A test-only callback that stalls one rank, to check that a hang becomes an error (not a wait)."""

import time

from lightning.pytorch import Callback


class StallRank(Callback):
    """Sleep ``seconds`` on rank ``rank`` at the end of validation of epoch ``epoch``; the other ranks
    then wait for it in the next collective (the val/adv_acc reduction)."""

    def __init__(self, rank: int = 1, epoch: int = 1, seconds: float = 300.0):
        self.rank, self.epoch, self.seconds = rank, epoch, seconds

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.global_rank == self.rank and trainer.current_epoch == self.epoch and not trainer.sanity_checking:
            time.sleep(self.seconds)
