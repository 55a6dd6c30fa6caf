"""Smoothed explanations: SmoothGrad, UniGrad and any method applied to the smoothed model.

Tan & Tian (ICML 2023, section 4 and Theorem 4.3): smoothing the model,
``f_mu(x) = E_{z ~ mu}[f(x + z)]``, makes *any* explanation of ``f_mu`` more robust.
SmoothGrad (Smilkov et al. 2017) is the gradient of ``f_mu`` for a Gaussian ``mu``
(``grad f_mu = E[grad f(x + z)]``), UniGrad the same for a uniform ``mu`` on ``[-r, r]^d``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rxlit import rng
from rxlit.explain.noise import draw, resolve_samples
from rxlit.explain.passes import chunk_rows, gradient_rows
from rxlit.explain.registry import COMMON_OPTIONS, check_options, get_method, register_method, signature_of


def noisy_gradient(model: nn.Module, x: Tensor, target: Tensor, kernel: str, scale: float, n: int,
                   generator: rng.Generator, output: str, chunk_size: int | None) -> Tensor:
    """``(1/n) sum_j grad f(x + z_j)`` with all ``B * n`` noise vectors drawn up front in one call
    (so the result does not depend on the chunk size) and differentiated in chunks."""
    batch = x.shape[0]
    noise = draw(kernel, scale, generator, batch, (n, *x.shape[1:]), device=x.device, dtype=x.dtype)
    inputs = (x.unsqueeze(1) + noise).flatten(0, 1)
    grads = gradient_rows(model, inputs, target.repeat_interleave(n), output, chunk_size)
    return grads.view(batch, n, *x.shape[1:]).mean(dim=1)


@register_method("smoothgrad", stochastic=True, units="slope")
def smoothgrad(model: nn.Module, x: Tensor, target: Tensor, *, sigma: float = 0.03, n_samples: int | None = None,
               generator: rng.Generator = None, output: str = "logit", chunk_size: int | None = None) -> Tensor:
    """SmoothGrad (Smilkov et al. 2017): ``E_{z ~ N(0, sigma^2 I)}[grad f(x + z)]``, signed.

    ``n_samples=None`` uses Tan & Tian's rule (ICML 2023): 10 if sigma < 0.01 else floor(sigma/0.01)*10.
    Each example gets its own ``n_samples`` noise vectors.
    """
    n = resolve_samples(n_samples, sigma)
    return noisy_gradient(model, x, target, "gaussian", sigma, n, generator, output, chunk_size)


@register_method("unigrad", stochastic=True, units="slope")
def unigrad(model: nn.Module, x: Tensor, target: Tensor, *, r: float = 0.03, n_samples: int | None = None,
            generator: rng.Generator = None, output: str = "logit", chunk_size: int | None = None) -> Tensor:
    """UniGrad (Tan & Tian, ICML 2023): ``E_{z ~ U[-r, r]^d}[grad f(x + z)]``; ``n_samples`` as SmoothGrad's."""
    n = resolve_samples(n_samples, r)
    return noisy_gradient(model, x, target, "uniform", r, n, generator, output, chunk_size)


class SmoothedModel(nn.Module):
    """``f_mu`` with a fixed noise set: the logits averaged over ``x + z_j``, ``j = 1..n``.

    The noise ``(n, *shape)`` is drawn once (common random numbers), so ``f_mu`` is one
    deterministic smooth function for every input the base method evaluates. With
    ``output="prob"`` the average is over softmax probabilities and the module returns their
    log, so that the softmax a method takes recovers ``E[p(x + z)]`` exactly.
    """

    def __init__(self, model: nn.Module, noise: Tensor, output: str = "logit"):
        super().__init__()
        self.model = model
        self.register_buffer("noise", noise, persistent=False)
        self.output = output
        self.training = model.training  # do not touch the wrapped model's modes

    def forward(self, x: Tensor) -> Tensor:
        n = self.noise.shape[0]
        logits = self.model((x.unsqueeze(1) + self.noise.unsqueeze(0)).flatten(0, 1))
        logits = logits.view(x.shape[0], n, -1)
        if self.output == "prob":
            prob = logits.softmax(dim=-1).mean(dim=1)
            return prob.clamp_min(torch.finfo(prob.dtype).tiny).log()
        return logits.mean(dim=1)


def shared_generator(generator: rng.Generator) -> rng.Generator:
    """A generator for one noise set shared by the whole batch.

    For an :class:`~rxlit.rng.ExampleRNG` the shared set is keyed by (seed, epoch, stream) and a
    reserved index -1, so an example gets the same ``f_mu`` alone or inside any batch.
    """
    if isinstance(generator, rng.ExampleRNG):
        child = generator.spawn()
        return rng.ExampleRNG(child.seed, [-1], child.epoch, child.stream)
    return generator


def smoothing_noise(kernel: str, sigma: float, n: int, generator: rng.Generator, x: Tensor) -> Tensor:
    """The fixed noise set ``(n, *x.shape[1:])`` of a smoothed model."""
    return draw(kernel, sigma, shared_generator(generator), 1, (n, *x.shape[1:]), device=x.device, dtype=x.dtype)[0]


def _base_call(fn: Callable, options: dict, generator, output: str, chunk_size: int | None, n: int, x: Tensor) -> dict:
    clash = sorted(set(options) & set(COMMON_OPTIONS))
    if clash:
        raise ValueError(f"set {clash} on smoothed itself, not in base_options")
    check_options(fn, options)
    accepted = signature_of(fn).accepts
    common = {"generator": generator, "output": output,
              # each base row costs n model rows inside SmoothedModel
              "chunk_size": max(1, (chunk_size or chunk_rows(x)) // n)}
    return {**options, **{k: v for k, v in common.items() if k in accepted}}


@register_method("smoothed", stochastic=True, units="base")
def smoothed(model: nn.Module, x: Tensor, target: Tensor, *, base: str | Callable = "grad",
             base_options: dict | None = None, kernel: str = "gaussian", sigma: float = 0.03,
             n_samples: int | None = None, generator: rng.Generator = None, output: str = "logit",
             chunk_size: int | None = None) -> Tensor:
    """Any method applied to the smoothed model ``f_mu(x) = E_z[f(x + z)]`` (Tan & Tian 2023, Thm 4.3).

    ``kernel`` is gaussian (std ``sigma``), uniform (``[-sigma, sigma]``) or laplace (scale
    ``sigma``); ``n_samples=None`` uses Tan & Tian's rule on ``sigma``. ``f_mu`` is estimated with one
    fixed set of ``n_samples`` noise vectors shared by the batch (common random numbers), so it is a
    deterministic function while ``base`` (a method name or callable, with ``base_options``)
    explains it; ``smoothed(base="grad", kernel="gaussian")`` is SmoothGrad with that noise.
    """
    n = resolve_samples(n_samples, sigma)
    fn = get_method(base)
    noise = smoothing_noise(kernel, sigma, n, generator, x)
    call = _base_call(fn, dict(base_options or {}), generator, output, chunk_size, n, x)
    return fn(SmoothedModel(model, noise, output), x, target, **call)
