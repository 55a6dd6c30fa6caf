"""Seeded, class-stratified index selection shared by every data module.

All randomness here goes through numpy's ``default_rng`` seeded by a ``SeedSequence`` built from
``(seed, *keys)``, so a split or a subset is a pure function of the seed and a fixed key: the same
on every run, process and DDP rank.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Stream keys, so that the split, the eval subsets and generated data never share random numbers.
SPLIT_STREAM = 1
SUBSET_STREAM = 2
SYNTHETIC_STREAM = 3


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed derived from ``seed`` and some integer keys (independent streams)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *keys]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """A numpy generator for the stream ``(seed, *keys)``."""
    return np.random.default_rng(derive_seed(seed, *keys))


def largest_remainder(weights: np.ndarray, total: int, caps: np.ndarray | None = None) -> np.ndarray:
    """Integer quotas proportional to ``weights`` summing to ``total`` (Hamilton's method).

    ``caps`` bounds each quota (e.g. how many examples a class still has).
    """
    weights = np.asarray(weights, dtype=np.float64)
    caps = np.full(len(weights), np.iinfo(np.int64).max) if caps is None else np.asarray(caps)
    if total > caps.sum():
        raise ValueError(f"cannot pick {total} items from {int(caps.sum())}")
    exact = weights / weights.sum() * total
    quotas = np.minimum(np.floor(exact).astype(np.int64), caps)
    # Hand out what is left to the largest remainders that still have room.
    order = np.argsort(-(exact - quotas), kind="stable")
    while quotas.sum() < total:
        for k in order:
            if quotas.sum() == total:
                break
            if quotas[k] < caps[k]:
                quotas[k] += 1
    return quotas


def stratified_split(
    labels: np.ndarray, fractions: Sequence[float], seed: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Carve parts holding ``fractions`` of the examples out of ``labels``, class by class.

    Returns ``(rest, parts)``: ``parts[i]`` holds ``round(fractions[i] * N)`` indices whose class
    counts are within one of the exact proportion; ``rest`` holds the remaining indices. Every
    array is in a seeded random order, so a prefix of it is a random sample.
    """
    labels = np.asarray(labels)
    rng = rng_for(seed, SPLIT_STREAM)
    classes, counts = np.unique(labels, return_counts=True)
    pools = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    remaining = counts.copy()
    parts = []
    for fraction in fractions:
        quotas = largest_remainder(counts, int(round(fraction * len(labels))), caps=remaining)
        taken = [
            pool[len(pool) - left : len(pool) - left + q] for pool, left, q in zip(pools, remaining, quotas)
        ]
        remaining = remaining - quotas
        parts.append(rng.permutation(np.concatenate(taken)))
    rest = np.concatenate([pool[len(pool) - left :] for pool, left in zip(pools, remaining)])
    return rng.permutation(rest), parts


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` positions whose class counts follow the class proportions of ``labels`` (sorted)."""
    labels = np.asarray(labels)
    rng = rng_for(seed, SUBSET_STREAM)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = largest_remainder(counts, n, caps=counts)
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quotas)]
    return np.sort(np.concatenate(chosen))


def random_subset(size: int, n: int, seed: int) -> np.ndarray:
    """``n`` positions out of ``size`` drawn without replacement (sorted)."""
    return np.sort(rng_for(seed, SUBSET_STREAM).permutation(size)[:n])
