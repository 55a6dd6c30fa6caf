"""Per-epoch explanation evaluation (the ``explain=`` config group) and checkpoint evaluation.

* :class:`ExplanationEvaluation`: a Lightning callback, built from the config by
  :func:`build_explain_callback`;
* :func:`evaluate_subset`: the one evaluation function behind the callback and ``scripts/eval.py``;
* :func:`evaluate_checkpoint`: what ``scripts/eval.py`` runs.
"""

from rxlit.callbacks.callback import ExplanationEvaluation
from rxlit.callbacks.evaluate import EvalResult, evaluate_subset
from rxlit.callbacks.spec import MODEL_METRICS, EvalSpec, parse_spec


def build_explain_callback(explain_cfg: dict, seed: int, attack: dict | None = None) -> ExplanationEvaluation:
    """The callback of an ``explain`` config; unknown methods, metrics or options are refused here,
    before any training starts. ``attack`` (the run's ``data.attack``) is the robust-accuracy budget."""
    explain_cfg = {k: v for k, v in dict(explain_cfg).items() if k != "enabled"}
    return ExplanationEvaluation(parse_spec(explain_cfg, seed), attack=attack)


def evaluate_checkpoint(cfg) -> dict:
    """``scripts/eval.py``: see :mod:`rxlit.callbacks.checkpoint_eval`."""
    from rxlit.callbacks.checkpoint_eval import evaluate_checkpoint as run

    return run(cfg)


__all__ = ["MODEL_METRICS", "EvalResult", "EvalSpec", "ExplanationEvaluation", "build_explain_callback",
           "evaluate_checkpoint", "evaluate_subset", "parse_spec"]
