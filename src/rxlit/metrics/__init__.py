"""What rxlit measures: explanation robustness and faithfulness, model robustness, the
Theorem 4.1 bounds, certified bounds, and their aggregation (mean and confidence interval over
examples).

Every metric takes ``(model, x, target, method=..., generator=..., **options)`` and returns one
value per example; :data:`METRICS` / :func:`compute_metric` expose them by name.
"""

from rxlit.metrics.aggregate import MeanCI, PerExampleMetric, summarize
from rxlit.metrics.bounds import bound_ratio, bound_ratios, explanation_bound, theorem41_bound
from rxlit.metrics.certified import certified_bound, global_lipschitz
from rxlit.metrics.faithfulness import (
    deletion_auc,
    faithfulness_correlation,
    infidelity,
    insertion_auc,
    tan_faithfulness,
)
from rxlit.metrics.model import (
    clean_accuracy,
    gradient_norm,
    model_local_lipschitz,
    model_smoothness,
    robust_accuracy,
)
from rxlit.metrics.registry import METRICS, compute_metric, list_metrics, metric_info, register_metric
from rxlit.metrics.robustness import (
    adversarial_sensitivity,
    avg_sensitivity,
    local_lipschitz,
    max_sensitivity,
)

__all__ = [
    "METRICS", "MeanCI", "PerExampleMetric", "adversarial_sensitivity", "avg_sensitivity", "bound_ratio",
    "bound_ratios", "certified_bound", "clean_accuracy", "compute_metric", "deletion_auc", "explanation_bound",
    "global_lipschitz", "faithfulness_correlation", "gradient_norm",
    "infidelity", "insertion_auc", "list_metrics", "local_lipschitz", "metric_info", "max_sensitivity", "model_local_lipschitz",
    "model_smoothness", "register_metric", "robust_accuracy", "summarize", "tan_faithfulness",
    "theorem41_bound",
]
