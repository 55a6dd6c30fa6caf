"""The names under which evaluation results are logged: the one place that builds and parses them.

* ``xai/<metric>/<method>``: an explanation metric of one method (``xai/local_lipschitz/lime``);
* ``model/<metric>``: a metric of the model itself (``model/robust_accuracy``);
* ``xai/<name>``: a number about the evaluation (``xai/time_s``, ``xai/cost_fraction``).

W&B panels, ``metrics.json``, the console tables, ``scripts/compare.py`` and the studies' reports all
read these names, so a rename here is a rename everywhere.
"""

from __future__ import annotations

from rxlit.metrics.registry import METRICS, metric_info

EXPLAIN = "xai"
MODEL = "model"
PREFIXES = (f"{EXPLAIN}/", f"{MODEL}/")
TIME = f"{EXPLAIN}/time_s"
EPOCH_TIME = f"{EXPLAIN}/epoch_time_s"
COST_FRACTION = f"{EXPLAIN}/cost_fraction"
SALIENCY = f"{EXPLAIN}/saliency"
TABLE = f"{EXPLAIN}/table"


def metric_key(metric: str, method: str | None = None) -> str:
    """``model/<metric>`` for a model metric (no method), ``xai/<metric>/<method>`` otherwise."""
    return f"{MODEL}/{metric}" if method is None else f"{EXPLAIN}/{metric}/{method}"


def split_key(key: str) -> tuple[str, str, str | None] | None:
    """``("xai", metric, method)`` / ``("model", metric, None)``; None for any other key."""
    parts = key.split("/")
    if parts[0] == EXPLAIN and len(parts) == 3:
        return EXPLAIN, parts[1], parts[2]
    if parts[0] == MODEL and len(parts) == 2:
        return MODEL, parts[1], None
    return None


def metric_of(key: str) -> str:
    """The metric name of a key (its last part for an evaluation number such as ``xai/time_s``)."""
    parts = split_key(key)
    return key.split("/")[-1] if parts is None else parts[1]


def is_model_key(key: str) -> bool:
    """``model/<metric>``: a metric of the model itself."""
    parts = split_key(key)
    return parts is not None and parts[0] == MODEL


def is_evaluation_key(key: str) -> bool:
    """A value of the explanation evaluation (any ``xai/`` or ``model/`` key), not of training."""
    return key.startswith(PREFIXES)


def is_evaluation_number(key: str) -> bool:
    """``xai/<name>``: a number about the evaluation itself (its time, its cost), not a metric."""
    return key.startswith(f"{EXPLAIN}/") and key.count("/") == 1


def direction(key: str) -> str | None:
    """``"max"`` or ``"min"``: the better direction its metric declared; None for other keys."""
    parts = split_key(key)
    if parts is None or parts[1] not in METRICS:
        return None
    return "max" if metric_info(parts[1]).higher_is_better else "min"
