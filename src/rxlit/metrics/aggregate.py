"""Aggregation of per-example metric values over batches, epochs and DDP ranks.

:class:`PerExampleMetric` is a torchmetrics ``Metric``: it keeps every per-example value and its
dataset index in ``cat`` states, so torchmetrics gathers them across processes; ``compute``
drops indices repeated by ``DistributedSampler`` padding (the first occurrence is kept -- with
keyed noise a repeated example has the same value anyway) and reports the mean with a
confidence interval over examples. Call ``reset()`` between epochs (Lightning does it for
logged metrics).

Confidence interval (from :mod:`rxlit.stats`): Student-t, ``mean +- t_{(1+c)/2, n-1} * s / sqrt(n)``
with the sample standard deviation ``s`` (ddof = 1). It assumes independent examples and, via the
CLT, a roughly normal mean; for n >= 30 it is the usual normal interval to two digits. A
``proportion`` (0/1 values such as per-example accuracy) gets Wilson's score interval instead,
which stays inside [0, 1].
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from rxlit.stats import mean_interval, proportion_summary


def summarize(values: Tensor, confidence: float = 0.95, proportion: bool = False) -> dict[str, float]:
    """``dict(mean, ci_low, ci_high, std, n, n_dropped)`` of the finite values (NaN/inf are left
    out and counted in ``n_dropped``); Wilson's interval for a ``proportion``."""
    values = torch.as_tensor(values, dtype=torch.float64).reshape(-1).cpu().numpy()
    out = (proportion_summary if proportion else mean_interval)(values, confidence)
    return {"mean": out["mean"], "ci_low": out["low"], "ci_high": out["high"], "std": out["std"], "n": out["n"],
            "n_dropped": out["n_dropped"]}


class PerExampleMetric(Metric):
    """Mean and confidence interval of per-example values, exact across DDP ranks.

    ``update(values, index=None, epoch=0)``: ``index`` are the examples' dataset indices (needed
    for deduplication; without them every value counts). A value is identified by
    ``(epoch, index)``: within one epoch a repeated index (``DistributedSampler`` padding) counts
    once, while values of the same example from different epochs all count, so one metric can
    also aggregate over several epochs when it is not reset. ``compute()`` returns the dict of
    :func:`summarize` as float64 tensors.
    """

    full_state_update = False
    higher_is_better = None

    def __init__(self, confidence: float = 0.95, proportion: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.confidence = confidence
        self.proportion = proportion
        self.add_state("values", default=[], dist_reduce_fx="cat")
        self.add_state("indices", default=[], dist_reduce_fx="cat")
        self.add_state("epochs", default=[], dist_reduce_fx="cat")

    def update(self, values: Tensor, index: Tensor | None = None, epoch: int = 0) -> None:
        values = torch.as_tensor(values).detach().reshape(-1).to(torch.float64)
        if index is None:
            index = torch.full_like(values, -1, dtype=torch.long)  # -1: no index, never deduplicated
        index = torch.as_tensor(index, device=values.device).reshape(-1).long()
        if index.numel() != values.numel():
            raise ValueError(f"{values.numel()} values but {index.numel()} indices")
        self.values.append(values)
        self.indices.append(index)
        self.epochs.append(torch.full_like(index, int(epoch)))

    def examples(self) -> tuple[Tensor, Tensor]:
        """The deduplicated (values, indices), sorted by (epoch, index); unindexed values last."""
        if isinstance(self.values, list) and not self.values:  # after a DDP sync the states are tensors
            return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.long)
        values, indices, epochs = (dim_zero_cat(s) for s in (self.values, self.indices, self.epochs))
        unindexed = indices < 0
        known = (~unindexed).nonzero().squeeze(1)
        keys, inverse = torch.unique(torch.stack([epochs[known], indices[known]], 1), dim=0, return_inverse=True)
        rows = torch.arange(known.numel(), device=known.device)
        first = torch.full((keys.shape[0],), known.numel(), device=known.device).scatter_reduce(
            0, inverse, rows, "amin")  # the first occurrence of every (epoch, index), in key order
        kept = known[first]
        return torch.cat([values[kept], values[unindexed]]), torch.cat([indices[kept], indices[unindexed]])

    def compute(self) -> dict[str, Tensor]:
        values, _ = self.examples()
        summary = summarize(values, self.confidence, self.proportion)
        return {k: torch.tensor(float(v), dtype=torch.float64) for k, v in summary.items()}


MeanCI = PerExampleMetric
