"""The passes every method and metric is made of: the explained scalar, input gradients, and
memory-budgeted chunks of a flattened (examples x samples) set of inputs; eval mode for explaining.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

# Default memory budget for one chunk of a flattened perturbation set on an accelerator.
DEFAULT_BUDGET_BYTES = 256 * 2**20


# On a CPU the passes run fastest when a chunk's activations stay near the caches: on a small
# ResNet at 3x32x32, 32-64-row chunks took 0.75-0.9x the time per row of 341-row ones (the
# accelerator budget); 64 MiB is 85 rows there, and the budget rxlit.metrics uses on CPUs.
CPU_BUDGET_BYTES = 64 * 2**20


def scalar_output(logits: Tensor, target: Tensor, output: str = "logit") -> Tensor:
    """The explained scalar f per row: the target's logit (default) or softmax probability."""
    if output == "logit":
        return logits.gather(1, target.view(-1, 1)).squeeze(1)
    if output == "prob":
        return logits.softmax(dim=1).gather(1, target.view(-1, 1)).squeeze(1)
    raise ValueError(f"unknown output {output!r}; valid: 'logit', 'prob'")


def forward_scalar(model: nn.Module, x: Tensor, target: Tensor, output: str = "logit") -> Tensor:
    return scalar_output(model(x), target, output)


def input_gradient(model: nn.Module, x: Tensor, target: Tensor, output: str = "logit",
                   create_graph: bool = False) -> Tensor:
    """d f_target / d x for every row of x, in one forward and one backward pass."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        f = forward_scalar(model, x, target, output)
        (grad,) = torch.autograd.grad(f.sum(), x, create_graph=create_graph)
    return grad


def chunk_rows(x: Tensor, budget_bytes: int | None = None, activation_factor: int = 64) -> int:
    """Rows per chunk so that inputs times an activation multiplier fit the memory budget
    (default: :data:`CPU_BUDGET_BYTES` for CPU tensors, :data:`DEFAULT_BUDGET_BYTES` otherwise)."""
    if budget_bytes is None:
        budget_bytes = CPU_BUDGET_BYTES if x.device.type == "cpu" else DEFAULT_BUDGET_BYTES
    row_bytes = max(1, x[0].numel() * x.element_size() * activation_factor)
    return max(1, budget_bytes // row_bytes)


def iter_chunks(n_rows: int, chunk_size: int) -> Iterator[slice]:
    for start in range(0, n_rows, chunk_size):
        yield slice(start, min(start + chunk_size, n_rows))


def map_chunks(fn: Callable[..., Tensor], *tensors: Tensor, chunk_size: int | None = None) -> Tensor:
    """Apply ``fn`` to row-chunks of the tensors (all with the same first dim) and concatenate."""
    n = tensors[0].shape[0]
    size = chunk_size or chunk_rows(tensors[0])
    if size >= n:
        return fn(*tensors)
    return torch.cat([fn(*(t[rows] for t in tensors)) for rows in iter_chunks(n, size)])


def score_rows(model: nn.Module, build: Callable[[Tensor], Tensor], target: Tensor, n: int,
               output: str = "logit", chunk_size: int | None = None, like: Tensor | None = None) -> Tensor:
    """f at ``B * n`` perturbed inputs, built lazily chunk by chunk; returns (B, n).

    ``build(rows)`` maps flat row indices ``b * n + j`` to the model inputs of those rows, so a
    chunk never materialises more than ``chunk_size`` inputs (the memory budget of
    :func:`chunk_rows` applied to ``like``, one input row, when not given). A chunk of ``n`` rows
    or more is rounded down to whole examples, so ``build`` may rely on: ``len(rows)`` is a
    multiple of ``n`` exactly when the chunk holds whole examples (then it can broadcast each
    example over its ``n`` rows instead of gathering it row by row).
    """
    batch = target.shape[0]
    size = chunk_size or (chunk_rows(like) if like is not None else batch * n)
    if size >= n:
        size = size // n * n
    rows = torch.arange(batch * n, device=target.device)

    def run(r: Tensor) -> Tensor:
        with torch.no_grad():
            return forward_scalar(model, build(r), target[r // n], output)

    return map_chunks(run, rows, chunk_size=size).view(batch, n)


def gradient_rows(model: nn.Module, inputs: Tensor, target: Tensor, output: str = "logit",
                  chunk_size: int | None = None) -> Tensor:
    """d f / d x at every row of ``inputs`` (targets per row), in memory-budgeted chunks."""
    return map_chunks(lambda xs, ts: input_gradient(model, xs, ts, output), inputs, target,
                      chunk_size=chunk_size)


@contextmanager
def eval_mode(model: nn.Module):
    """Evaluate ``model`` in eval mode and restore every module's own train/eval flag after.

    Explanations are properties of the trained function: BatchNorm must use its running
    statistics (else an example's explanation depends on its batch and the statistics drift)
    and dropout must be off.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
