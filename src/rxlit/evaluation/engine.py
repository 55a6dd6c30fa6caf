"""One explanation evaluation: methods x metrics on a fixed subset, aggregated over DDP ranks.

This is the single function behind the per-epoch callback and ``scripts/eval.py``. Every random
number comes from an :class:`~rxlit.rng.ExampleRNG` keyed by (seed, example index, epoch), so an
example's values do not depend on which other examples share its batch or rank; the per-example
values are gathered and averaged by :class:`~rxlit.metrics.PerExampleMetric` (torchmetrics), which
makes a DDP evaluation equal to a single-process one up to float error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from rxlit.evaluation import keys
from rxlit.evaluation.keys import metric_key
from rxlit.evaluation.spec import EvalSpec
from rxlit.explain.core import explain
from rxlit.explain.passes import eval_mode
from rxlit.explain.registry import METHODS, bound_info, declare
from rxlit.metrics import METRICS, PerExampleMetric, bound_ratios, compute_metric, robust_accuracy
from rxlit.metrics.registry import metric_info
from rxlit.rng import ExampleRNG

# ExampleRNG stream of the explanations handed to faithfulness metrics (any fixed number works;
# the metrics spawn their own streams for their perturbations).
ATTRIBUTION_STREAM = 11


@dataclass
class EvalResult:
    """Aggregated values of one evaluation: ``summaries[key] = {mean, ci_low, ci_high, std, n}``."""

    epoch: int
    split: str
    summaries: dict[str, dict[str, float]] = field(default_factory=dict)
    time_s: float = 0.0
    epoch_time_s: float | None = None  # the training epoch before a per-epoch evaluation
    cpu_time_s: float | None = None  # process CPU time of this evaluation (this rank)
    epoch_cpu_time_s: float | None = None  # process CPU time of that training epoch

    def scalars(self) -> dict[str, float]:
        """``{key: mean}`` plus ``xai/time_s``: what is logged."""
        out = {key: value["mean"] for key, value in self.summaries.items()}
        out[keys.TIME] = self.time_s
        return out

    def as_dict(self) -> dict:
        return {"epoch": self.epoch, "split": self.split, "time_s": self.time_s, "epoch_time_s": self.epoch_time_s,
                "cpu_time_s": self.cpu_time_s, "epoch_cpu_time_s": self.epoch_cpu_time_s, "metrics": self.summaries}


def bound_method(name: str, options: dict) -> str | Callable:
    """The method a metric explains with: its name, or, with options, a function binding them.

    Options are bound rather than passed through the metric because metric and method options
    share names (``n_samples`` of local_lipschitz vs that of LIME). The function carries the
    method's declared :class:`~rxlit.explain.MethodInfo` (stochastic, units).
    """
    if not options:
        return name
    fn = METHODS.get(name)
    takes_generator = METHODS.signature(name).takes("generator")

    def method(model, x, target, *, generator=None, output: str = "logit", chunk_size=None):
        extra = {"generator": generator} if takes_generator else {}
        return fn(model, x, target, output=output, chunk_size=chunk_size, **extra, **options)

    method.__name__ = name
    return declare(method, bound_info(name, options))


def robust_options(options: dict, attack: dict | None) -> dict:
    """attack/eps/step/steps of robust_accuracy: the config's, else the data set's attack budget."""
    attack = attack or {}
    fallback = {"eps": attack.get("eps", 8 / 255), "step": attack.get("step", 2 / 255),
                "steps": attack.get("steps", 10), "attack": "pgd"}
    declared = METRICS.options("robust_accuracy")
    merged = {**declared, **options}
    return {k: fallback[k] if merged[k] is None else merged[k] for k in declared}


def metric_values(name: str, options: dict, model: nn.Module, x: Tensor, target: Tensor, y: Tensor,
                  index: Tensor, spec: EvalSpec, epoch: int, method=None, attack: dict | None = None,
                  attributions: Tensor | None = None) -> Tensor:
    """One value per example of metric ``name`` (of ``method``, or of the model).

    ``attributions`` (the method's explanations of ``x``) are handed to the metrics that accept
    them, so faithfulness metrics do not explain ``x`` again.
    """
    if name == "robust_accuracy":
        robust = robust_options(options, attack)  # keyed PGD (or AutoAttack), as the training's val/adv_acc
        return robust_accuracy(model, x, y, seed=spec.seed, index=index.cpu(), epoch=epoch, **robust).detach()
    extra = {"seed": spec.seed, "index": index.cpu(), "epoch": epoch, "attributions": attributions}
    extra["chunk_size"] = spec.chunk_size
    accepts = METRICS.signature(name).accepts  # metrics taking **_ ignore these: pass only named ones
    extra = {k: v for k, v in extra.items() if v is not None and k in accepts}
    label = y if name == "clean_accuracy" else target
    return compute_metric(name, model, x, label, method=method if method is not None else "grad",
                          **extra, **options).detach()


def is_proportion(key: str) -> bool:
    """Per-example values of 0/1 (declared by the metric): their interval is Wilson's, inside [0, 1]."""
    metric = keys.metric_of(key)
    return metric in METRICS and metric_info(metric).proportion


def aggregate(values: Tensor, index: Tensor, proportion: bool = False) -> dict[str, float]:
    """Mean and 95% CI over every rank's examples (torchmetrics gathers them under DDP); Wilson's
    interval for a ``proportion``."""
    metric = PerExampleMetric(proportion=proportion).to(values.device)
    metric.update(values, index.to(values.device))
    out = {key: float(value) for key, value in metric.compute().items()}
    out["n"] = int(out["n"])
    out.pop("n_dropped", None)
    return out


def resolve_targets(model: nn.Module, x: Tensor, y: Tensor, target: str) -> Tensor:
    if target == "label":
        return y
    with torch.no_grad():
        return model(x).argmax(1)


def evaluate_shard(model: nn.Module, x: Tensor, y: Tensor, index: Tensor, spec: EvalSpec, epoch: int,
                   attack: dict | None = None, progress=None,
                   explanations: dict | None = None) -> dict[str, dict[str, float]]:
    """Every configured (method, metric) and model metric on this rank's examples, aggregated over
    all ranks (each rank must call this with its own shard, in the same order), and the Theorem 4.1
    bound ratios. ``explanations``, when a dict, receives each method's explanations of the shard."""
    values = {}
    target = resolve_targets(model, x, y, spec.target)
    for name, options in spec.model_metrics.items():
        values[metric_key(name)] = metric_values(name, options, model, x, target, y, index, spec, epoch,
                                                 attack=attack)
        _advance(progress, metric_key(name))
    for method, method_options in spec.methods.items():
        bound = bound_method(method, method_options)
        phi = explain_examples(model, x, target, bound, spec.seed, index, epoch)
        if explanations is not None:
            explanations[method] = phi
        for name, options in spec.explanation_metrics.items():
            values[metric_key(name, method)] = metric_values(name, options, model, x, target, y, index, spec,
                                                             epoch, method=bound, attributions=phi)
            _advance(progress, metric_key(name, method))
    values.update(shard_bound_ratios(values, spec, x))
    return {key: aggregate(v, index, proportion=is_proportion(key)) for key, v in values.items()}


def explain_examples(model: nn.Module, x: Tensor, target: Tensor, method, seed: int, index: Tensor,
                     epoch: int) -> Tensor:
    """The explanations of ``x``, keyed by (seed, example index, epoch) like every metric."""
    generator = ExampleRNG(seed, index.cpu(), epoch, stream=ATTRIBUTION_STREAM)
    return explain(model, x, target, method, generator=generator).detach()


def _advance(progress, label: str) -> None:
    if progress is not None:
        progress.advance(label)


def shard_bound_ratios(values: dict[str, Tensor], spec: EvalSpec, x: Tensor) -> dict[str, Tensor]:
    """``xai/bound_ratio/<method>``: per example, the explanation's local Lipschitz estimate over its
    Theorem 4.1 bound at that example's local L and H (:func:`rxlit.metrics.bound_ratios`, the same
    function the studies use). Needs local_lipschitz, model_local_lipschitz and model_smoothness
    in the config. Grad is left out: its bound is H, the same estimate (a ratio of 1 by definition)."""
    L, H = values.get(metric_key("model_local_lipschitz")), values.get(metric_key("model_smoothness"))
    lipschitz = {m: values[metric_key("local_lipschitz", m)] for m in spec.methods
                 if metric_key("local_lipschitz", m) in values}
    if L is None or H is None or not lipschitz:
        return {}
    ratios = bound_ratios(lipschitz, spec.methods, x, L, H)
    return {metric_key("bound_ratio", method): ratio for method, ratio in ratios.items()}


def evaluate_subset(model: nn.Module, x: Tensor, y: Tensor, index: Tensor, spec: EvalSpec, epoch: int,
                    rank: int = 0, world_size: int = 1, attack: dict | None = None, progress=None,
                    explanations: dict | None = None) -> EvalResult:
    """Evaluate the full subset ``(x, y, index)``: each rank takes every ``world_size``-th example.

    ``explanations``, when a dict, receives ``{method: explanations of this rank's shard}`` (the
    callback reuses them for the saliency grid instead of explaining again).

    The model runs in eval mode (flags restored after) and torch's global RNG is left untouched,
    so training continues exactly as without the evaluation.
    """
    start = time.perf_counter()
    device = next(model.parameters()).device
    x, y, index = x.to(device), y.to(device), index.to(device)
    shard = slice(rank, None, world_size)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), eval_mode(model), torch.enable_grad():
        summaries = evaluate_shard(model, x[shard], y[shard], index[shard], spec, epoch, attack, progress,
                                   explanations)
    return EvalResult(epoch=epoch, split=spec.split, summaries=summaries, time_s=time.perf_counter() - start)
