"""Shared settings of the callback tests: a tiny explanation matrix that still covers every kind of
method (gradient, sampled, perturbation) and metric (robustness, faithfulness, model)."""

METHODS = ["grad", "smoothgrad", "lime"]
EXPLANATION_METRICS = ["local_lipschitz", "tan_faithfulness", "infidelity"]
MODEL_METRICS = ["model_local_lipschitz", "model_smoothness", "robust_accuracy"]
BOUNDED = ["smoothgrad", "lime"]  # Theorem 4.1 bounds checked (Grad's is the identity H: not logged)

TINY_EXPLAIN = [
    "explain=default",
    "explain.n_examples=8",
    "explain.n_saliency_examples=2",
    "explain.every_n_epochs=1",
    "explain.progress=false",
    "~explain.methods.grad_x_input",
    "~explain.methods.integrated_gradients",
    "~explain.methods.kernel_shap",
    "explain.methods.smoothgrad.n_samples=3",
    "explain.methods.lime.n_samples=12",
    "explain.metrics.local_lipschitz.n_samples=3",
    "explain.metrics.infidelity.n_samples=8",
    "explain.metrics.model_local_lipschitz.n_samples=3",
    "explain.metrics.model_smoothness.n_samples=3",
    "+explain.metrics.robust_accuracy.steps=2",
]


def expected_keys() -> set[str]:
    keys = {f"xai/{metric}/{method}" for metric in EXPLANATION_METRICS for method in METHODS}
    keys |= {f"model/{metric}" for metric in MODEL_METRICS}
    keys |= {f"xai/bound_ratio/{method}" for method in BOUNDED}
    return keys | {"xai/time_s", "xai/epoch_time_s", "xai/cost_fraction"}
