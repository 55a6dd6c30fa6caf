"""Robustness of the model itself: local Lipschitz constant, smoothness, gradient norm, clean and
robust accuracy.

Tan & Tian (ICML 2023, Sec. 3) measure model Lipschitzness and smoothness with the same local
estimator as explanations, applied to ``f`` and to ``grad f``; their Theorem 4.1 bounds the
explanation Lipschitz constants by these two numbers (see :mod:`rxlit.metrics.bounds`).
The ``method`` argument of these metrics is accepted and ignored (uniform calling convention).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rxlit import rng
from rxlit.explain.core import resolve_target
from rxlit.explain.passes import input_gradient
from rxlit.metrics.attacks import ATTACKS, survives
from rxlit.metrics.engine import default_chunk, evaluated, map_rows, model_output, row_examples, row_norm
from rxlit.metrics.perturbations import FlatStream, neighbourhood, resolve_generator
from rxlit.metrics.registry import register_metric
from rxlit.metrics.robustness import local_lipschitz
from rxlit.registry import refuse_renamed
from rxlit.rng import Generator


@register_metric("model_local_lipschitz", kind="model", higher_is_better=False)
@evaluated
def model_local_lipschitz(model: nn.Module, x: Tensor, target: Tensor | int | None = None, method=None,
                          n_samples: int = 50, sigma: float = 0.03, noise: str | Callable = "gaussian",
                          output: str = "logit", generator: Generator = None, chunk_size: int | None = None,
                          clip: bool = False, seed: int | None = None, index=None, epoch: int = 0) -> Tensor:
    """Local Lipschitz estimate of the model (Tan & Tian, ICML 2023):
    ``max_i |f(x) - f(x_i)| / ||x - x_i||_2`` with ``x_i ~ N(x, sigma^2 I)`` (n = 50, sigma = 0.03).

    ``output="logit"`` (default) is the explained scalar, the target's logit, i.e. the ``L`` of
    Theorem 4.1; ``"prob"`` its softmax probability; ``"logits"`` / ``"probs"`` the whole vector,
    with ``|.|`` replaced by the L2 norm of the vector difference.
    """
    target = resolve_target(model, x, target)
    generator = resolve_generator(generator, x.shape[0], seed, index, epoch)
    B, n = x.shape[0], n_samples
    stream, sample = FlatStream(generator, B, n), neighbourhood(noise, sigma, clip)
    with torch.no_grad():
        f_x = model_output(model, x, target, output)

    def chunk(rows: slice) -> Tensor:
        e = row_examples(rows, n, x.device)
        x_near = sample(x[e], stream, rows)
        with torch.no_grad():
            f_near = model_output(model, x_near, target[e], output)
        return row_norm(f_near - f_x[e]) / row_norm(x_near - x[e]).clamp_min(torch.finfo(x.dtype).tiny)

    return map_rows(B * n, default_chunk(x, chunk_size), chunk).view(B, n).amax(dim=1)


@register_metric("model_smoothness", kind="model", higher_is_better=False)
@evaluated
def model_smoothness(model: nn.Module, x: Tensor, target: Tensor | int | None = None, method=None,
                     n_samples: int = 50, sigma: float = 0.03, noise: str | Callable = "gaussian",
                     output: str = "logit", generator: Generator = None, chunk_size: int | None = None,
                     clip: bool = False, seed: int | None = None, index=None, epoch: int = 0) -> Tensor:
    """Local smoothness (Tan & Tian, ICML 2023): the local Lipschitz estimate of ``grad f``,
    ``max_i ||grad f(x) - grad f(x_i)||_2 / ||x - x_i||_2`` -- the ``H`` of Theorem 4.1."""
    return local_lipschitz(model, x, target, "grad", n_samples=n_samples, sigma=sigma, noise=noise,
                           generator=generator, chunk_size=chunk_size, clip=clip, seed=seed, index=index,
                           epoch=epoch, output=output)


@register_metric("gradient_norm", kind="model", higher_is_better=False)
@evaluated
def gradient_norm(model: nn.Module, x: Tensor, target: Tensor | int | None = None, method=None,
                  output: str = "logit", generator: Generator = None, **_) -> Tensor:
    """``||grad_x f(x)||_2`` per example: the local slope, a one-point lower bound on ``L``."""
    target = resolve_target(model, x, target)
    return row_norm(input_gradient(model, x, target, output))


@register_metric("clean_accuracy", kind="model", higher_is_better=True, proportion=True)
@evaluated
def clean_accuracy(model: nn.Module, x: Tensor, target: Tensor, method=None, generator: Generator = None,
                   **_) -> Tensor:
    """1.0 where ``argmax model(x)`` equals the label, else 0.0 (per example)."""
    with torch.no_grad():
        return (model(x).argmax(dim=1) == torch.as_tensor(target, device=x.device)).to(x.dtype)


@register_metric("robust_accuracy", kind="model", higher_is_better=True, proportion=True,
                 # the evaluation's options; null: the data set's attack budget (data.attack)
                 options={"attack": "pgd", "eps": None, "step": None, "steps": None})
def robust_accuracy(model: nn.Module, x: Tensor, target: Tensor, method=None, attack: str = "pgd",
                    eps: float = 8 / 255, step: float | None = 2 / 255, steps: int = 10, norm: str = "linf",
                    n_classes: int | None = None, seed: int | None = None, index=None, epoch: int = 0,
                    generator: Generator = None, **_) -> Tensor:
    """1.0 where the label survives an attack of radius ``eps`` (L-inf, or L2 with ``norm="l2"``), per
    example (:func:`rxlit.metrics.attacks.survives`).

    ``attack="pgd"``: :func:`rxlit.metrics.attacks.pgd` from a random start (Madry et al.; Tan &
    Tian's robust models use eps 8/255, step 2/255; ``step=None``: eps / 4), the attack behind the
    training's ``val/adv_acc``. With ``seed`` the start is keyed by (seed, ``index``, ``epoch``) like
    every metric's noise (``index`` defaults to ``0..B-1``; pass the examples' dataset indices, as
    the evaluation does, for values independent of batching and DDP rank); else it comes from
    ``generator`` (``None``: torch's global one). ``"autoattack"``: standard AutoAttack (Croce &
    Hein 2020, torchattacks) seeded by ``seed`` per call. Every module's training flag is restored.
    """
    refuse_renamed("robust_accuracy", _)
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; valid: 'pgd', 'autoattack'")
    generator = resolve_generator(generator, x.shape[0], seed, index, epoch) if attack == "pgd" else None
    return survives(model, x, target, attack, eps, eps / 4 if step is None else step, steps, norm,
                    rng.spawn(generator), n_classes, seed)
