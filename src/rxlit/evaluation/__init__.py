"""Evaluating explanations: the engine, its specification, the per-epoch Lightning callback, tables.

* :func:`evaluate_subset` (:mod:`rxlit.evaluation.engine`): plain functions, no Lightning needed;
  the one evaluation behind the callback, ``scripts/eval.py``, :func:`rxlit.evaluate` and the studies;
* :class:`EvalSpec` / :func:`parse_spec` (:mod:`rxlit.evaluation.spec`): an ``explain`` config checked
  into methods, metrics and options;
* :class:`ExplanationEvaluation` (:mod:`rxlit.evaluation.callback`): the per-epoch callback, a thin
  wrapper that runs the engine on each rank's share of a fixed subset and logs the result;
* :mod:`rxlit.evaluation.keys`: the names results are logged under (``xai/<metric>/<method>``).
"""

from rxlit.evaluation.callback import ExplanationEvaluation
from rxlit.evaluation.engine import EvalResult, evaluate_subset
from rxlit.evaluation.spec import EvalSpec, parse_spec


def build_explain_callback(explain_cfg: dict, seed: int, attack: dict | None = None) -> ExplanationEvaluation:
    """The callback of an ``explain`` config; unknown methods, metrics or options are refused here,
    before any training starts. ``attack`` (the run's ``data.attack``) is the robust-accuracy budget."""
    explain_cfg = {k: v for k, v in dict(explain_cfg).items() if k != "enabled"}
    return ExplanationEvaluation(parse_spec(explain_cfg, seed), attack=attack)


__all__ = ["EvalResult", "EvalSpec", "ExplanationEvaluation", "build_explain_callback",
           "evaluate_subset", "parse_spec"]
