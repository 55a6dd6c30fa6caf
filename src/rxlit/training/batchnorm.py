"""Which DDP settings a run can use: SyncBatchNorm only where torch supports it (CUDA)."""

from __future__ import annotations

import torch

GPU_ACCELERATORS = ("gpu", "cuda")


def uses_cuda(trainer_spec: dict) -> bool:
    accelerator = str(trainer_spec.get("accelerator", "auto"))
    return accelerator in GPU_ACCELERATORS or (accelerator == "auto" and torch.cuda.is_available())


def sync_batchnorm(trainer_spec: dict) -> bool:
    """``trainer.sync_batchnorm``: ``auto`` is true exactly when the run uses CUDA, where torch's
    SyncBatchNorm works (all processes normalise with the global batch's statistics); on CPU (gloo)
    each process normalises with its own batch's statistics. ``true`` without CUDA is refused."""
    value = trainer_spec.get("sync_batchnorm", False)
    if value == "auto":
        return uses_cuda(trainer_spec)
    if value is True and not uses_cuda(trainer_spec):
        raise ValueError("trainer.sync_batchnorm=true needs CUDA: torch's SyncBatchNorm only runs on GPU modules. "
                         "On CPU set trainer.sync_batchnorm=auto or false (each process then normalises with "
                         "its own batch's statistics)")
    if value not in (True, False):
        raise ValueError(f"trainer.sync_batchnorm must be auto, true or false, got {value!r}")
    return value
