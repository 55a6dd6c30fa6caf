"""The ``explain=`` config group, parsed and checked before any training starts.

A config names explanation methods and metrics, each with options::

    methods: {grad: {}, lime: {n_samples: 50}}        # or a list: [grad, {lime: {n_samples: 50}}]
    metrics: {local_lipschitz: {n_samples: 10}, model_smoothness: {}}

Metrics that describe the model itself (declared ``kind="model"`` at registration) are computed
once and logged as ``model/<metric>``; every other metric is computed for every method and logged as
``xai/<metric>/<method>``. Unknown names and options are refused with the valid ones (the options each
method and metric declared when it was registered).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from rxlit.explain import METHODS
from rxlit.metrics import METRICS
from rxlit.metrics.registry import is_model_metric
from rxlit.registry import refuse_renamed

# robust_accuracy is computed by the keyed PGD of rxlit.metrics.attacks with the options it declared; null values
# are taken from the data set's attack budget (data.attack: eps, step, steps). attack: autoattack runs
# torchattacks' standard AutoAttack at eps instead (step and steps unused).
ROBUST_ATTACKS = ("pgd", "autoattack")

SPLITS = ("train", "val", "test")
TARGETS = ("label", "pred")

SPEC_KEYS = ("enabled", "methods", "metrics", "n_examples", "every_n_epochs", "n_saliency_examples", "seed",
             "split", "target", "chunk_size", "progress", "save_files")


@dataclass(frozen=True)
class EvalSpec:
    """What one explanation evaluation computes (see docs/evaluation.md for every key)."""

    methods: dict[str, dict] = field(default_factory=lambda: {"grad": {}})
    metrics: dict[str, dict] = field(default_factory=lambda: {"local_lipschitz": {}})
    n_examples: int = 64
    every_n_epochs: int = 1
    n_saliency_examples: int = 4
    seed: int = 0
    split: str = "val"
    target: str = "label"
    chunk_size: int | None = None
    progress: bool = True
    save_files: bool = True

    @property
    def model_metrics(self) -> dict[str, dict]:
        return {k: v for k, v in self.metrics.items() if is_model_metric(k)}

    @property
    def explanation_metrics(self) -> dict[str, dict]:
        return {k: v for k, v in self.metrics.items() if not is_model_metric(k)}

    def with_split(self, split: str | None) -> EvalSpec:
        return self if split is None else replace(self, split=_choice("split", split, SPLITS))

    def n_tasks(self) -> int:
        """Units of work shown by the progress indicator."""
        return len(self.model_metrics) + len(self.methods) * len(self.explanation_metrics)


def _named_items(value, what: str) -> dict[str, dict]:
    """A mapping ``name -> options`` from a mapping or a list of names / one-key mappings."""
    if value is None:
        return {}
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list | tuple):
        items = []
        for entry in value:
            if isinstance(entry, str):
                items.append((entry, {}))
            elif isinstance(entry, dict) and "name" in entry:
                entry = dict(entry)
                items.append((entry.pop("name"), entry.pop("options", entry)))
            elif isinstance(entry, dict) and len(entry) == 1:
                items.extend(entry.items())
            else:
                raise ValueError(f"explain.{what}: cannot read entry {entry!r}; write a name, "
                                 "{name: {options}} or {name: ..., options: {...}}")
    else:
        raise ValueError(f"explain.{what} must be a mapping name -> options or a list, got {value!r}")
    out = {}
    for name, options in items:
        if options is not None and not isinstance(options, dict):
            raise ValueError(f"explain.{what}.{name}: options must be a mapping, got {options!r}")
        out[str(name)] = dict(options or {})
    return out


def _check_names(given: dict, valid: list[str], what: str) -> None:
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ValueError(f"unknown explanation {what} {unknown} in the explain config; "
                         f"valid {what}: {', '.join(sorted(valid))}")


def _check_options(name: str, options: dict, valid: set[str], what: str) -> None:
    refuse_renamed(name, options)
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {what} {name!r} in the explain config; "
                         f"valid options: {', '.join(sorted(valid)) or '(none)'}")


def check_methods(methods: dict[str, dict]) -> None:
    _check_names(methods, METHODS.names(), "methods")
    for name, options in methods.items():
        _check_options(name, options, set(METHODS.options(name)) | {"output"}, "method")


def check_metrics(metrics: dict[str, dict]) -> None:
    _check_names(metrics, METRICS.names(), "metrics")
    for name, options in metrics.items():
        _check_options(name, options, set(METRICS.options(name)), "metric")
    attack = (metrics.get("robust_accuracy") or {}).get("attack", "pgd")
    if attack not in ROBUST_ATTACKS:
        raise ValueError(f"explain.metrics.robust_accuracy.attack must be one of {', '.join(ROBUST_ATTACKS)}, "
                         f"got {attack!r}")


def _positive(key: str, value, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"explain.{key} must be a positive integer, got {value!r}")
    return value


def _choice(key: str, value, valid) -> str:
    if value not in valid:
        raise ValueError(f"explain.{key} must be one of {', '.join(valid)}, got {value!r}")
    return value


def parse_spec(cfg: dict, seed: int = 0) -> EvalSpec:
    """Check an ``explain`` config and build its :class:`EvalSpec`; ``seed`` is the run seed (used
    when ``explain.seed`` is null)."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(SPEC_KEYS))
    if unknown:
        raise ValueError(f"unknown explain config key(s) {unknown}; valid keys: {', '.join(SPEC_KEYS)}")
    methods = _named_items(cfg.get("methods"), "methods")
    metrics = _named_items(cfg.get("metrics"), "metrics")
    check_methods(methods)
    check_metrics(metrics)
    if not metrics:
        raise ValueError("explain.metrics is empty: name at least one metric, e.g. local_lipschitz")
    if not methods and not all(map(is_model_metric, metrics)):
        raise ValueError("explain.methods is empty but explanation metrics are configured: name a method, e.g. grad")
    run_seed = cfg.get("seed")
    return EvalSpec(
        methods=methods,
        metrics=metrics,
        n_examples=_positive("n_examples", cfg.get("n_examples", 64)),
        every_n_epochs=_positive("every_n_epochs", cfg.get("every_n_epochs", 1)),
        n_saliency_examples=max(0, int(cfg.get("n_saliency_examples", 4) or 0)),
        seed=int(seed if run_seed is None else run_seed),
        split=_choice("split", cfg.get("split", "val"), SPLITS),
        target=_choice("target", cfg.get("target", "label"), TARGETS),
        chunk_size=_positive("chunk_size", cfg.get("chunk_size"), allow_none=True),
        progress=bool(cfg.get("progress", True)),
        save_files=bool(cfg.get("save_files", True)),
    )
