"""The one place where known third-party console noise is silenced (each entry says why).

Silenced: Lightning's advertisement for its cloud logger (printed on every run), a deprecation
warning raised inside Lightning's own pytree helper (nothing a user can change), and the "does not
have many workers" hint for the in-memory data sets (their loaders are fastest without workers), and
Lightning's note that a checkpoint folder is not empty (a resumed run keeps writing in its folder;
a new run never gets one that holds checkpoints).
Everything else (real warnings about a user's settings) still prints.
"""

from __future__ import annotations

import logging
import warnings

WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # lightning/pytorch/utilities/_pytree.py
    r".*does not have many workers.*",                     # in-memory tensors: workers only add start-up time
    r"Checkpoint directory .* exists and is not empty.*",  # a resumed run writes where it started, by design
)
LOG_PREFIXES = ("💡 Tip: For seamless cloud logging",)      # Lightning's LitLogger advertisement


class _DropPrefixes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(LOG_PREFIXES)


def quiet_known_noise() -> None:
    """Install the filters (idempotent)."""
    for pattern in WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropPrefixes) for f in log.filters):
            log.addFilter(_DropPrefixes())
