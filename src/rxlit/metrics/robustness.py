"""Explanation robustness: local Lipschitz estimate and (max / avg / adversarial) sensitivity.

All estimators share one pass: draw ``n_samples`` neighbours of every example, flatten them into
``B * n_samples`` rows, explain the rows chunk by chunk, and reduce per example.

* Tan & Tian, ICML 2023, Sec. 3:
  ``L(x) = max_i ||phi(x) - phi(x_i)||_2 / ||x - x_i||_2``, ``x_i ~ N(x, sigma^2 I)``,
  n = 50, sigma = 0.03, not normalised by ``||phi(x)||``.
* Yeh et al., NeurIPS 2019, Def. 3.1:
  ``SENS_max(phi, f, x, r) = max_{||y - x||_inf <= r} ||phi(y) - phi(x)|| / ||phi(x)||``, estimated
  by 50 uniform samples of the L-inf ball (the normalisation is the one of their code and of
  Captum's ``sensitivity_max``); ``SENS_avg`` is the mean instead of the max.

Common random numbers (``draws="common"``, the default). A stochastic method (SmoothGrad, LIME,
KernelSHAP, ... declared ``stochastic`` at registration) with its draws fixed is a deterministic
function of x: the explanation. Every estimator here evaluates it with the *same* draws at x and
at each of x's neighbours (keyed per example, so batch, chunk and rank invariance still hold).
``draws="independent"`` gives every point fresh draws, as repeated calls of the explainer would:
it measures robustness plus Monte Carlo error, and since the Monte Carlo error does not shrink
with ``||x - x_i||`` the estimate grows like 1 / (neighbour scale).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rxlit import rng
from rxlit.activations import replace_activations
from rxlit.explain.core import resolve_target
from rxlit.explain.passes import forward_scalar
from rxlit.explain.registry import method_info
from rxlit.metrics.engine import (
    default_chunk,
    evaluated,
    explain_rows,
    map_rows,
    row_examples,
    row_norm,
    safe_div,
)
from rxlit.metrics.perturbations import FlatStream, neighbourhood, resolve_generator
from rxlit.metrics.registry import register_metric
from rxlit.registry import refuse_renamed
from rxlit.rng import ExampleRNG, Generator

DRAWS = ("common", "independent")


@dataclass
class NeighbourDistances:
    """Per (example, sample): explanation change and input change; the reference explanation."""

    phi: Tensor          # (B, *shape) explanation at x
    d_phi: Tensor        # (B, n) ||phi(x_i) - phi(x)||_2
    d_x: Tensor          # (B, n) ||x_i - x||_2
    best_x: Tensor | None = None  # (B, *shape) the sample maximising score(d_phi, d_x)
    method_key: Generator = None  # the method's draws at x, unused (replay them with rng.subset)


def check_draws(draws: str) -> None:
    if draws not in DRAWS:
        raise ValueError(f"unknown draws {draws!r}; valid: 'common' (the same draws at x and its neighbours: "
                         "the explanation's robustness) or 'independent' (robustness plus Monte Carlo error)")


def method_streams(generator: Generator, batch: int, n_samples: int, method, options: dict, draws: str
                   ) -> tuple[FlatStream, Generator, FlatStream]:
    """(neighbour noise, the method's draws at x, the method's draws at the neighbours).

    Spawned in a fixed order, so each example's numbers depend only on its key. With common draws
    the neighbours replay the draws of x (same keys, same stream position). A stochastic method
    given a ``torch.Generator`` (or none) gets keys drawn from it, one per example, so that its
    draws can be replayed.
    """
    check_draws(draws)
    noise = FlatStream(generator, batch, n_samples)
    phi_noise = rng.spawn(generator)
    independent = FlatStream(generator, batch, n_samples)
    if draws == "independent" or not method_info(method, options).stochastic:
        return noise, phi_noise, independent
    if not isinstance(phi_noise, ExampleRNG):
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        phi_noise = ExampleRNG(seed, torch.arange(batch))
    common = FlatStream(None, 0, n_samples)
    common.generator = phi_noise.subset(torch.arange(batch).repeat_interleave(n_samples))
    return noise, phi_noise, common


def method_generator(seed: int, index, epoch: int = 0) -> ExampleRNG:
    """The generator the robustness metrics hand a method at x when keyed by ``(seed, index,
    epoch)``: its draws are those every neighbour replays under common draws (used to certify the
    estimator with those draws, :mod:`rxlit.metrics.certified`)."""
    index = torch.as_tensor(index).reshape(-1)
    return method_streams(ExampleRNG(seed, index, epoch), index.numel(), 1, "grad", {}, "independent")[1]


def neighbour_distances(model: nn.Module, x: Tensor, target: Tensor, method, n_samples: int,
                        sample: Callable, generator: Generator, chunk_size: int | None, options: dict,
                        score: Callable[[Tensor, Tensor], Tensor] | None = None,
                        draws: str = "common") -> NeighbourDistances:
    """Explain ``x`` and ``n_samples`` neighbours each, in chunks of flattened rows.

    ``draws``: see the module doc and :func:`method_streams`. With ``score`` the best neighbour
    of every example is kept (for the adversarial search's initialisation).
    """
    B, n = x.shape[0], n_samples
    noise, phi_noise, method_noise = method_streams(generator, B, n, method, options, draws)
    key = rng.subset(phi_noise, slice(None))  # before explain() advances phi_noise's counter
    chunk_size = default_chunk(x, chunk_size)
    phi = explain_rows(model, x, target, method, phi_noise, options, chunk_size)
    best_x = x.clone() if score is not None else None
    best = torch.full((B,), -torch.inf, device=x.device, dtype=x.dtype)

    def chunk(rows: slice) -> Tensor:
        e = row_examples(rows, n, x.device)
        x_rows = x[e]
        x_near = sample(x_rows, noise, rows)
        phi_near = explain_rows(model, x_near, target[e], method, method_noise.rows(rows), options, chunk_size,
                                trusted=True)
        d = torch.stack([row_norm(phi_near - phi[e]), row_norm(x_near - x_rows)], 1).to(x.dtype)
        if score is not None:
            _keep_best(best, best_x, e, score(d[:, 0], d[:, 1]), x_near)
        return d

    d = map_rows(B * n, chunk_size, chunk)
    return NeighbourDistances(phi, d[:, 0].view(B, n), d[:, 1].view(B, n), best_x, key)


def _keep_best(best: Tensor, best_x: Tensor, e: Tensor, value: Tensor, x_near: Tensor) -> None:
    """Running per-example argmax over chunks (in place); vectorised within a chunk.

    Ties go to the earliest sample (a ReLU network's gradient is piecewise constant, so equal
    changes are common), which keeps the search's start independent of the chunk size.
    """
    chunk_max = torch.full_like(best, -torch.inf).scatter_reduce(0, e, value, "amax")
    improved = chunk_max > best
    rows = torch.arange(e.numel(), device=e.device)
    candidates = torch.where(improved[e] & (value == chunk_max[e]), rows, e.numel())
    first = torch.full((best.numel(),), e.numel(), device=e.device).scatter_reduce(0, e, candidates, "amin")
    won = improved & (first < e.numel())
    best_x[won] = x_near[first[won]]
    best.copy_(torch.where(improved, chunk_max, best))


def _prepare(model, x, target, generator, seed, index, epoch):
    target = resolve_target(model, x, target)
    return target, resolve_generator(generator, x.shape[0], seed, index, epoch)


@register_metric("local_lipschitz", higher_is_better=False)
@evaluated
def local_lipschitz(model: nn.Module, x: Tensor, target: Tensor | int | None = None, method="grad",
                    n_samples: int = 50, sigma: float = 0.03, noise: str | Callable = "gaussian",
                    generator: Generator = None, chunk_size: int | None = None, clip: bool = False,
                    draws: str = "common", seed: int | None = None, index=None, epoch: int = 0,
                    method_options: dict | None = None, **options) -> Tensor:
    """Local Lipschitz estimate of an explanation (Tan & Tian, ICML 2023, Sec. 3).

    ``L(x) = max_i ||phi(x) - phi(x_i)||_2 / ||x - x_i||_2`` over ``n_samples`` neighbours
    ``x_i ~ N(x, sigma^2 I)`` (``noise="gaussian"``, default n = 50, sigma = 0.03) or uniform in
    the L-inf ball of radius ``sigma`` (``noise="uniform"``); not normalised by ``||phi(x)||``.
    Matches Quantus' ``LocalLipschitzEstimate`` with ``normalise=False, abs=False`` and Euclidean
    numerator and denominator. Returns one value per example.

    ``draws="common"`` (default): a stochastic method (SmoothGrad, LIME, KernelSHAP) uses the same
    draws at x and at every neighbour, so the estimate is that of the explanation itself.
    ``draws="independent"``: fresh draws at every point -- robustness plus Monte Carlo error (it
    grows like 1 / sigma as the neighbours come closer).
    """
    method_options = {**(method_options or {}), **options}  # dict form: no name clashes
    target, generator = _prepare(model, x, target, generator, seed, index, epoch)
    d = neighbour_distances(model, x, target, method, n_samples, neighbourhood(noise, sigma, clip),
                            generator, chunk_size, method_options, draws=draws)
    return (d.d_phi / d.d_x.clamp_min(torch.finfo(d.d_x.dtype).tiny)).amax(dim=1)


def _sensitivity(model, x, target, method, n_samples, radius, noise, normalize, reduce, generator,
                 chunk_size, clip, draws, seed, index, epoch, method_options) -> Tensor:
    target, generator = _prepare(model, x, target, generator, seed, index, epoch)
    d = neighbour_distances(model, x, target, method, n_samples, neighbourhood(noise, radius, clip),
                            generator, chunk_size, method_options, draws=draws)
    sens = safe_div(d.d_phi, row_norm(d.phi).unsqueeze(1)) if normalize else d.d_phi
    return sens.amax(dim=1) if reduce == "max" else sens.mean(dim=1)


@register_metric("max_sensitivity", higher_is_better=False)
@evaluated
def max_sensitivity(model: nn.Module, x: Tensor, target: Tensor | int | None = None, method="grad",
                    n_samples: int = 50, radius: float = 0.02, normalize: bool = True,
                    noise: str | Callable = "uniform", generator: Generator = None,
                    chunk_size: int | None = None, clip: bool = False,
                    draws: str = "common", seed: int | None = None, index=None, epoch: int = 0,
                    method_options: dict | None = None, **options) -> Tensor:
    """Max-sensitivity (Yeh et al., NeurIPS 2019, Def. 3.1), Monte Carlo estimate.

    ``max_j ||phi(x + delta_j) - phi(x)||_2 / ||phi(x)||_2`` over ``n_samples`` (50) uniform
    ``delta_j`` in the L-inf ball of radius ``radius`` (0.02). ``normalize=False`` drops the
    division; a zero ``phi(x)`` divides by 1. ``noise`` may also be ``"gaussian"`` (std
    ``radius``) or a callable ``x_rows -> x_perturbed`` (Captum's ``perturb_func``). Equals Captum's
    ``sensitivity_max`` (whose output is always normalised) given the same perturbations. ``draws``: see
    :func:`local_lipschitz` (common by default).
    """
    method_options = {**(method_options or {}), **options}  # dict form: no name clashes
    return _sensitivity(model, x, target, method, n_samples, radius, noise, normalize, "max", generator,
                        chunk_size, clip, draws, seed, index, epoch, method_options)


@register_metric("avg_sensitivity", higher_is_better=False)
@evaluated
def avg_sensitivity(model: nn.Module, x: Tensor, target: Tensor | int | None = None, method="grad",
                    n_samples: int = 50, radius: float = 0.02, normalize: bool = True,
                    noise: str | Callable = "uniform", generator: Generator = None,
                    chunk_size: int | None = None, clip: bool = False,
                    draws: str = "common", seed: int | None = None, index=None, epoch: int = 0,
                    method_options: dict | None = None, **options) -> Tensor:
    """Average sensitivity (Yeh et al., NeurIPS 2019, Sec. 3): the mean over the same uniform
    samples of ``||phi(x + delta) - phi(x)|| / ||phi(x)||`` (``normalize=False``: no division);
    ``draws`` as in :func:`local_lipschitz`."""
    method_options = {**(method_options or {}), **options}  # dict form: no name clashes
    return _sensitivity(model, x, target, method, n_samples, radius, noise, normalize, "mean", generator,
                        chunk_size, clip, draws, seed, index, epoch, method_options)


# --- Adversarial sensitivity: projected gradient ascent on a smooth surrogate ------------------

def smooth_surrogate(model: nn.Module, beta: float) -> nn.Module:
    """A copy of ``model`` with every ``nn.ReLU`` replaced by ``Softplus(beta)``.

    The gradient of a ReLU network is piecewise constant, so the explanation change has zero
    gradient almost everywhere; the softplus surrogate gives the ascent a direction.
    """
    surrogate = copy.deepcopy(model)
    replace_activations(surrogate, lambda: nn.Softplus(beta=beta))
    return surrogate


# Methods whose explanation is a closed-form function of the input gradient: their ascent
# direction is computed exactly by double backpropagation.
_DIFFERENTIABLE = {"grad": lambda g, y: g, "grad_x_input": lambda g, y: g * y}


def _replayer(d: NeighbourDistances, draws: str) -> Callable[[Tensor], Generator] | None:
    """``e -> the draws of x for rows of examples e`` under common draws (None: fresh draws)."""
    if draws == "common" and isinstance(d.method_key, ExampleRNG):
        return d.method_key.subset
    return None


def _ascent_direction(surrogate, y, ref, target, method, options, generator, n_directions, fd_step, replay):
    """Gradient (exact, or SPSA estimate) of ``||phi_s(y) - ref||^2`` with respect to ``y``."""
    output = options.get("output", "logit")
    if isinstance(method, str) and method in _DIFFERENTIABLE and set(options) <= {"output"}:
        with torch.enable_grad():
            y = y.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(forward_scalar(surrogate, y, target, output).sum(), y, create_graph=True)
            loss = (_DIFFERENTIABLE[method](g, y) - ref).flatten(1).pow(2).sum()
            (direction,) = torch.autograd.grad(loss, y)
        return direction
    return _spsa_direction(surrogate, y, ref, target, method, options, generator, n_directions, fd_step, replay)


def _spsa_direction(surrogate, y, ref, target, method, options, generator, n_directions, fd_step, replay):
    """Antithetic Rademacher finite differences, all directions in one flattened batch.

    Both points of a pair get the same method noise (common random numbers), so a stochastic
    method's Monte Carlo error cancels in the difference; under common draws (``replay``) that
    noise is the draws of x.
    """
    B, k = y.shape[0], n_directions
    signs = FlatStream(generator, B, k).uniform(slice(0, B * k), y.shape[1:], y.device, y.dtype)
    u = torch.where(signs < 0.5, -1.0, 1.0).to(y.dtype)
    e = torch.arange(B * k, device=y.device) // k
    points = torch.cat([y[e] + fd_step * u, y[e] - fd_step * u])
    shared = FlatStream(generator, B, k, repeat=True).generator  # one key per example
    method_noise = shared
    if replay is not None:
        method_noise = replay(e.repeat(2).cpu())
    elif isinstance(shared, ExampleRNG):  # the rows are (+ block, - block): repeat the keys
        method_noise = ExampleRNG(shared.seed, shared.index.repeat(2), shared.epoch, shared.stream)
    phi = explain_rows(surrogate, points, target[e].repeat(2), method, method_noise, options)
    loss = (phi - ref[e].repeat(2, *[1] * (phi.dim() - 1))).flatten(1).pow(2).sum(1)
    slope = (loss[: B * k] - loss[B * k:]) / (2 * fd_step)
    return (slope.view(-1, *[1] * (u.dim() - 1)) * u).view(B, k, *y.shape[1:]).mean(1)


@register_metric("adversarial_sensitivity", higher_is_better=False)
@evaluated
def adversarial_sensitivity(model: nn.Module, x: Tensor, target: Tensor | int | None = None, method="grad",
                            radius: float = 0.02, n_samples: int = 50, steps: int = 10,
                            step: float | None = None, beta: float = 10.0, normalize: bool = True,
                            n_directions: int = 8, generator: Generator = None,
                            chunk_size: int | None = None, clip: bool = False, draws: str = "common",
                            seed: int | None = None, index=None, epoch: int = 0, method_options: dict | None = None,
                            **options) -> Tensor:
    """Worst-case sensitivity in the L-inf ball (the max of Yeh et al.'s ``SENS_max``, searched).

    1. Monte Carlo: the ``n_samples`` uniform samples of :func:`max_sensitivity`; the best one per
       example initialises the search, so the result is never below the Monte Carlo maximum.
    2. ``steps`` of projected sign-gradient ascent of size ``step`` (None: ``2.5 * radius / steps``) on
       ``||phi_s(y) - phi_s(x)||^2`` where ``phi_s`` explains a surrogate with ReLU replaced by
       ``Softplus(beta)``. Grad and Grad x Input are differentiated exactly (double backprop);
       other methods by an antithetic SPSA estimate with ``n_directions`` directions.
    3. Every iterate is scored with the TRUE explanation of ``model``; the best change found is
       returned, normalised by ``||phi(x)||`` when ``normalize`` (as :func:`max_sensitivity`).

    ``draws="common"`` (default): a stochastic method uses the draws of x at every sample, SPSA
    point and iterate; ``"independent"``: fresh draws (robustness plus Monte Carlo error).
    """
    refuse_renamed("adversarial_sensitivity", options)
    method_options = {**(method_options or {}), **options}  # dict form: no name clashes
    target, generator = _prepare(model, x, target, generator, seed, index, epoch)
    d = neighbour_distances(model, x, target, method, n_samples, neighbourhood("uniform", radius, clip),
                            generator, chunk_size, method_options, score=lambda d_phi, d_x: d_phi, draws=draws)
    denom = row_norm(d.phi) if normalize else torch.ones(x.shape[0], device=x.device, dtype=x.dtype)
    best, y = d.d_phi.amax(dim=1), d.best_x
    if steps <= 0:
        return safe_div(best, denom)
    surrogate = smooth_surrogate(model, beta)
    step = 2.5 * radius / steps if step is None else step
    chunk = default_chunk(x, chunk_size)
    replay = _replayer(d, draws)
    every = torch.arange(x.shape[0])

    def draws_at_x() -> Generator:
        return replay(every) if replay is not None else rng.spawn(generator)

    ref = explain_rows(surrogate, x, target, method, draws_at_x(), method_options, chunk).detach()
    for _ in range(steps):  # the ascent is sequential by nature; each step is one batched pass
        direction = _ascent_direction(surrogate, y, ref, target, method, method_options, generator,
                                      n_directions, radius / 4, replay)
        y = x + (y + step * direction.sign() - x).clamp(-radius, radius)
        y = y.clamp(0, 1) if clip else y
        phi_y = explain_rows(model, y, target, method, draws_at_x(), method_options, chunk)
        change = row_norm(phi_y - d.phi).to(best.dtype)
        best = torch.maximum(best, change)
    return safe_div(best, denom)

