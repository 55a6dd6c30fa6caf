"""Run a function on two real gloo ranks (forked processes) and return rank 0's result."""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Callable
from typing import Any


def _rank_main(rank: int, port: str, queue, fn: Callable[..., Any], args: tuple) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    torch.set_num_threads(1)  # forked child: stay off the parent's thread pool
    try:
        dist.init_process_group("gloo", rank=rank, world_size=2)
        out = fn(rank, 2, *args)
        if rank == 0:
            # by value: torch's queue would share a tensor through a file descriptor that dies with
            # this process, and the parent, slower under load, then reads a closed connection
            queue.put(pickle.dumps(out))
        dist.destroy_process_group()
    except Exception as error:  # report instead of leaving the parent waiting
        queue.put(pickle.dumps(RuntimeError(f"rank {rank}: {error!r}")))


def run_on_two_ranks(fn: Callable[..., Any], *args, timeout: float = 120.0) -> Any:
    """``fn(rank, world, *args)`` on ranks 0 and 1; returns rank 0's value (raises a rank's error).

    Fork, not spawn: the children do not re-import torch, so a test stays around a second.
    """
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_rank_main, args=(rank, port, queue, fn, args)) for rank in range(2)]
    for p in procs:
        p.start()
    out = pickle.loads(queue.get(timeout=timeout))
    for p in procs:
        p.join(timeout=30)
    if isinstance(out, Exception):
        raise out
    return out
