"""The evaluation attack of training (``eval_attack`` config): its defaults, checked before training.

The attacks themselves live in :mod:`rxlit.metrics.attacks`, shared with the evaluation's
``robust_accuracy``: ``val/adv_acc`` and ``test/adv_acc`` are the keyed PGD there (or AutoAttack).
"""

from __future__ import annotations

from rxlit.metrics.attacks import ATTACKS, NORMS, check_budget

# Madry et al. (2018): a step of 2.5 eps / steps lets PGD reach the edge of the ball from any start.
STEP_FACTOR = 2.5


def eval_attack_spec(spec: dict, budget: dict | None, adv_name: str = "none") -> dict:
    """The evaluation attack with its defaults filled in and checked, before training starts.

    ``norm: null`` follows the training objective (``l2`` for ``adv=pgd_l2``, else ``linf``);
    ``eps: null`` is the data set's budget for that norm (``data.attack.eps`` or ``eps_l2``);
    ``step: null`` is 2.5 eps / steps (Madry et al.), so the attack can reach the edge of the
    ball from its start. A step too small to reach the edge (steps x step < eps) is refused: the
    reported robust accuracy would overstate robustness. ``test_attack`` is the attack behind
    ``test/adv_acc``: ``pgd`` (the same attack as ``val/adv_acc``) or ``autoattack`` (standard).
    """
    out = {"n_examples": 0, "norm": None, "eps": None, "steps": 10, "step": None, "test_attack": "pgd", **spec}
    if int(out["n_examples"] or 0) <= 0:
        return {**out, "n_examples": 0}
    norm = out["norm"] or ("l2" if adv_name == "pgd_l2" else "linf")
    if norm not in NORMS:
        raise ValueError(f"eval_attack.norm must be one of {', '.join(NORMS)} or null (follow adv=), got {norm!r}")
    eps = out["eps"]
    if eps is None:
        key = "eps_l2" if norm == "l2" else "eps"
        if not budget or budget.get(key) is None:
            raise ValueError(f"eval_attack.eps is null and the data set has no attack.{key}: set eval_attack.eps")
        eps = float(budget[key])
    if eps <= 0:
        raise ValueError(f"eval_attack.eps must be > 0 (got {eps}); eval_attack.n_examples=0 turns the attack off")
    steps = int(out["steps"])
    check_budget(eps, out["step"], steps, prefix="eval_attack")
    step = STEP_FACTOR * eps / steps if out["step"] is None else float(out["step"])
    if steps * step < eps * (1 - 1e-6):
        raise ValueError(f"eval_attack.steps x eval_attack.step = {steps} x {step:g} = {steps * step:g} < eps {eps:g}: "
                         "the attack cannot reach the edge of the ball and adv_acc would overstate robustness. "
                         f"Set eval_attack.step=null ({STEP_FACTOR} eps / steps) or more eval_attack.steps")
    if out["test_attack"] not in ATTACKS:
        raise ValueError(f"eval_attack.test_attack must be one of {', '.join(ATTACKS)}, got {out['test_attack']!r}")
    return {**out, "norm": norm, "eps": eps, "steps": steps, "step": step}
