"""BatchNorm in training: the regularisers' per-example view of it, and SyncBatchNorm where it runs.

The input-gradient penalties (``regularizers.py``) need the per-example input gradient of the
function the model trains. In train mode BatchNorm normalises with the batch's statistics, which
depend on every example of the batch, so example i's "input gradient" also moves with the other
examples. ``BatchStatistics`` records each BatchNorm layer's batch mean and variance during the
training forward and replays them as constants: the penalty's passes run with every module in eval
mode (dropout off, running statistics untouched) and each BatchNorm normalising by the recorded
statistics of the matching training forward. At the training point this is the trained function
itself (same values), but per example, and it never updates the running statistics. (Plain eval
mode, on the running statistics, would regularise another function than the one trained: at
initialisation the running statistics are 0 and 1. Measurements: docs/training.md.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from rxlit.explain.passes import eval_mode  # every module in eval mode, each flag restored after

GPU_ACCELERATORS = ("gpu", "cuda")


def batch_moments(module: _BatchNorm, x: Tensor) -> tuple[Tensor, Tensor]:
    """The mean and (biased) variance a train-mode BatchNorm normalises ``x`` with; for
    SyncBatchNorm under DDP, over the whole process group's batch (as SyncBatchNorm does)."""
    dims = [0, *range(2, x.dim())]
    x = x.detach()
    if x.dtype in (torch.float16, torch.bfloat16):  # statistics in float32, as BatchNorm computes them
        x = x.float()
    group = getattr(module, "process_group", None)
    if isinstance(module, nn.SyncBatchNorm) and dist.is_available() and dist.is_initialized() \
            and dist.get_world_size(group) > 1:
        count = x.new_tensor([x.numel() / x.shape[1]])
        packed = torch.cat([x.sum(dims), x.pow(2).sum(dims), count])
        dist.all_reduce(packed, group=group)
        channels = x.shape[1]
        total = packed[-1]
        mean = packed[:channels] / total
        return mean, (packed[channels:2 * channels] / total - mean.pow(2)).clamp_min(0)
    return x.mean(dims), x.var(dims, unbiased=False)


class BatchStatistics:
    """Records every BatchNorm layer's batch statistics during the training forward(s)
    (``with stats.record(): ...``) and evaluates a loss with them held fixed (``stats.frozen``)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.layers = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        self.moments: dict[nn.Module, list[tuple[Tensor, Tensor]]] = {m: [] for m in self.layers}

    @contextmanager
    def record(self) -> Iterator[BatchStatistics]:
        def hook(module, args) -> None:
            if module.training:
                self.moments[module].append(batch_moments(module, args[0]))

        handles = [m.register_forward_pre_hook(hook) for m in self.layers]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def frozen(self, loss_at: Callable) -> Callable:
        """``loss_at`` evaluated in eval mode, each BatchNorm's k-th call in one evaluation
        normalising with the statistics of its k-th recorded training call (constants)."""

        def at(z: Tensor):
            calls = {m: iter(moments) for m, moments in self.moments.items()}
            saved = {m: (m._buffers.get("running_mean"), m._buffers.get("running_var")) for m in self.layers}

            def replay(module, args) -> None:
                try:
                    mean, var = next(calls[module])
                except StopIteration:
                    raise RuntimeError("the penalty's loss calls a BatchNorm layer more often than the training "
                                       "forward did; BatchStatistics cannot replay its statistics") from None
                like = saved[module][0]
                if like is not None:
                    mean, var = mean.to(like.dtype), var.to(like.dtype)
                module._buffers["running_mean"], module._buffers["running_var"] = mean, var

            handles = [m.register_forward_pre_hook(replay) for m in self.layers]
            try:
                with eval_mode(self.model):
                    return loss_at(z)
            finally:
                for handle in handles:
                    handle.remove()
                for module, (mean, var) in saved.items():
                    module._buffers["running_mean"], module._buffers["running_var"] = mean, var

        return at


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
