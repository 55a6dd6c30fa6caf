"""Aggregation of per-example metric values over batches, epochs and DDP ranks.

:class:`PerExampleMetric` is a torchmetrics ``Metric``: it keeps every per-example value and its
dataset index in ``cat`` states, so torchmetrics gathers them across processes; ``compute``
drops indices repeated by ``DistributedSampler`` padding (the first occurrence is kept -- with
keyed noise a repeated example has the same value anyway) and reports the mean with a
confidence interval over examples. Call ``reset()`` between epochs (Lightning does it for
logged metrics).

Confidence interval: Student-t, ``mean +- t_{(1+c)/2, n-1} * s / sqrt(n)`` with the sample
standard deviation ``s`` (ddof = 1). It assumes independent examples and, via the CLT, a roughly
normal mean; for n >= 30 it is the usual normal interval to two digits.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def t_quantile(q: float, dof: int) -> float:
    """Quantile of Student's t (scipy when available, else the normal quantile)."""
    try:
        from scipy.stats import t
    except ImportError:  # scipy ships with scikit-learn; fall back to the large-n limit
        return math.sqrt(2) * torch.erfinv(torch.tensor(2 * q - 1, dtype=torch.float64)).item()
    return float(t.ppf(q, dof))


def summarize(values: Tensor, confidence: float = 0.95) -> dict[str, float]:
    """``dict(mean, ci_low, ci_high, std, n)`` of the finite values (NaN/inf are left out and
    counted in ``n_dropped``)."""
    values = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    finite = values[torch.isfinite(values)]
    n = finite.numel()
    out = {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "std": math.nan, "n": n,
           "n_dropped": values.numel() - n}
    if n == 0:
        return out
    mean = finite.mean().item()
    out["mean"] = mean
    if n == 1:
        out.update(ci_low=mean, ci_high=mean, std=0.0)
        return out
    std = finite.std(unbiased=True).item()
    half = t_quantile((1 + confidence) / 2, n - 1) * std / math.sqrt(n)
    out.update(ci_low=mean - half, ci_high=mean + half, std=std)
    return out


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

    def __init__(self, confidence: float = 0.95, **kwargs):
        super().__init__(**kwargs)
        self.confidence = confidence
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
        return {k: torch.tensor(float(v), dtype=torch.float64) for k, v in summarize(values, self.confidence).items()}


MeanCI = PerExampleMetric
