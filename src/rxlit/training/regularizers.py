"""Lipschitz and smoothness regularisers: input-gradient norm, spectral norm, curvature.

Tan & Tian (ICML 2023, Thm 4.1) bound explanation Lipschitz constants by the model's Lipschitz
constant L and smoothness H; these regularisers control L (gradnorm, spectral) and H (curvature).

The penalties use ``torch.autograd.grad(..., create_graph=True)`` with respect to the inputs
only, never ``.backward()``: under DDP that keeps the reducer's one-backward-per-step contract,
and the penalty is a per-example mean, so the all-reduced gradient equals the global-batch one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from rxlit.registry import Registry

REGULARIZERS = Registry("reg (regulariser)")


class Regularizer:
    """No regularisation."""

    name = "none"
    needs_input_grad = False

    def transform_model(self, model: nn.Module) -> nn.Module:
        return model

    def penalty(self, model: nn.Module, inputs: Tensor, y: Tensor, per_example_loss: Tensor) -> Tensor:
        return per_example_loss.new_zeros(())


def _per_example_input_grad(per_example_loss: Tensor, inputs: Tensor) -> Tensor:
    (grad,) = torch.autograd.grad(per_example_loss.sum(), inputs, create_graph=True)
    return grad.flatten(1)


class GradNorm(Regularizer):
    """Ross & Doshi-Velez 2018 double backprop: weight * mean_i ||d loss_i / d x_i||_2^2."""

    name = "gradnorm"
    needs_input_grad = True

    def __init__(self, weight: float):
        self.weight = weight

    def penalty(self, model, inputs, y, per_example_loss):
        grad = _per_example_input_grad(per_example_loss, inputs)
        return self.weight * grad.pow(2).sum(1).mean()


class Curvature(Regularizer):
    """Finite-difference curvature penalty (CURE, Moosavi-Dezfooli et al. 2019).

    weight * mean_i ||g(x_i + h v_i) - g(x_i)||^2 / h^2 with g the input gradient of the loss and
    v_i = g(x_i) / ||g(x_i)||: an estimate of ||H v||^2, the curvature along the gradient, which is
    what bounds gradient explanations' Lipschitz constant (Tan & Tian Thm 4.1: Grad <= H).
    """

    name = "curvature"
    needs_input_grad = True

    def __init__(self, weight: float, h: float):
        self.weight = weight
        self.h = h

    def penalty(self, model, inputs, y, per_example_loss):
        grad = _per_example_input_grad(per_example_loss, inputs)
        direction = grad.detach() / grad.detach().norm(dim=1, keepdim=True).clamp_min(1e-12)
        shifted = (inputs.detach() + self.h * direction.view_as(inputs)).requires_grad_(True)
        logits = model(shifted)
        loss = torch.nn.functional.cross_entropy(logits, y, reduction="none")
        (grad_shifted,) = torch.autograd.grad(loss.sum(), shifted, create_graph=True)
        diff = (grad_shifted.flatten(1) - grad) / self.h
        return self.weight * diff.pow(2).sum(1).mean()


class Spectral(Regularizer):
    """Spectral normalisation (Miyato et al. 2018) of every conv and linear weight.

    Conv kernels are normalised as (out, in*k*k) matrices, which is an approximation of the
    conv operator's norm; BatchNorm layers are left as they are, so the network's Lipschitz
    constant is reduced, not bounded by 1.
    """

    name = "spectral"

    def __init__(self, n_power_iterations: int = 1):
        self.n_power_iterations = int(n_power_iterations)

    def transform_model(self, model):
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                spectral_norm(module, n_power_iterations=self.n_power_iterations)
        return model


@REGULARIZERS.register("none")
def no_reg() -> Regularizer:
    return Regularizer()


@REGULARIZERS.register("gradnorm")
def gradnorm(weight: float = 0.1) -> Regularizer:
    if weight < 0:
        raise ValueError(f"reg.weight must be >= 0 (got {weight})")
    return GradNorm(weight)


@REGULARIZERS.register("curvature")
def curvature(weight: float = 0.1, h: float = 0.01) -> Regularizer:
    if weight < 0 or h <= 0:
        raise ValueError(f"reg.weight must be >= 0 and reg.h > 0 (got {weight}, {h})")
    return Curvature(weight, h)


@REGULARIZERS.register("spectral")
def spectral(n_power_iterations: int = 1) -> Regularizer:
    if n_power_iterations < 1:
        raise ValueError("reg.n_power_iterations must be >= 1")
    return Spectral(n_power_iterations)


def build_regularizer(name: str, **kwargs) -> Regularizer:
    factory = REGULARIZERS.get(name)
    try:
        return factory(**kwargs)
    except TypeError as err:
        raise ValueError(f"bad options for reg={name}: {err}") from err
