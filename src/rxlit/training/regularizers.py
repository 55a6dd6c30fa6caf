"""Lipschitz and smoothness regularisers: input-gradient norm, spectral norm, curvature.

Tan & Tian (ICML 2023, Thm 4.1) bound explanation Lipschitz constants by the model's Lipschitz
constant L and smoothness H; these regularisers control L (gradnorm, spectral) and H (curvature).

The input-gradient penalties differentiate the objective's own per-example loss
(``TrainingLoss.at``, see ``objectives.py``) at every point they evaluate, so they regularise
exactly the loss the model trains on (the whole TRADES objective included). The training step
hands them that loss as ``loss_at``: for a network without BatchNorm or dropout it is the
objective's own function, and the penalty reuses the training forward pass; otherwise it is the
same function with dropout off and every BatchNorm normalising by the training forward's batch
statistics held fixed (``batchnorm.BatchStatistics``), which makes it per-example, keeps the
curvature's shifted pass from updating the running statistics, and lets double backprop run
under DDP with SyncBatchNorm (torch has no double backward for SyncBatchNorm in train mode; in
eval mode it is an affine map).

The penalties use ``torch.autograd.grad(..., create_graph=True)`` with respect to the inputs only,
never ``.backward()``: under DDP that keeps the reducer's one-backward-per-step contract, and a
per-example mean all-reduces to the global-batch value.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm, _NormBase
from torch.nn.modules.dropout import _DropoutNd
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from rxlit.explain.passes import eval_mode
from rxlit.registry import Registry
from rxlit.training.objectives import LossAt

REGULARIZERS = Registry("reg (regulariser)")

LossFn = Callable[[Tensor], LossAt]


def mode_dependent(model: nn.Module) -> bool:
    """True when the network computes a different function in train mode (BatchNorm or
    InstanceNorm with running statistics, active dropout or stochastic depth)."""
    for module in model.modules():
        if isinstance(module, _NormBase) and (module.track_running_stats or isinstance(module, _BatchNorm)):
            return True
        if isinstance(module, _DropoutNd) and module.p > 0:
            return True
        if "DropPath" in type(module).__name__ and getattr(module, "drop_prob", 0) > 0:
            return True
    return False


def input_gradient(loss: Tensor, inputs: Tensor) -> Tensor:
    """d loss_i / d x_i per example, flattened, with the graph kept for double backprop."""
    (grad,) = torch.autograd.grad(loss.sum(), inputs, create_graph=True)
    return grad.flatten(1)


def loss_and_inputs(loss_at: LossFn, inputs: Tensor, loss: Tensor | None) -> tuple[Tensor, Tensor]:
    """The training forward's (loss, inputs) when given, else a fresh forward at the same point."""
    if loss is not None:
        return loss, inputs
    inputs = inputs.detach().requires_grad_(True)
    return loss_at(inputs).loss, inputs


class Regularizer:
    """No regularisation."""

    name = "none"
    needs_input_grad = False

    def transform_model(self, model: nn.Module, input_shape: tuple[int, int, int] | None = None) -> nn.Module:
        return model

    def penalty(self, loss_at: LossFn, inputs: Tensor, loss: Tensor | None = None) -> Tensor:
        """``loss_at(z)``: the per-example loss at any point; ``loss``: the training forward's loss at
        ``inputs`` (which then require grad), to reuse; None makes the penalty run its own forward."""
        return inputs.new_zeros(())


class GradNorm(Regularizer):
    """Ross & Doshi-Velez 2018 double backprop: weight * mean_i ||d loss_i / d x_i||_2^2."""

    name = "gradnorm"
    needs_input_grad = True

    def __init__(self, weight: float):
        self.weight = weight

    def penalty(self, loss_at, inputs, loss=None):
        loss, inputs = loss_and_inputs(loss_at, inputs, loss)
        return self.weight * input_gradient(loss, inputs).pow(2).sum(1).mean()


class Curvature(Regularizer):
    """Finite-difference curvature penalty, after CURE (Moosavi-Dezfooli et al., CVPR 2019).

    weight * mean_i ||g(x_i + h v_i) - g(x_i)||^2 / h^2, with g the input gradient of the
    objective's per-example loss (the same loss at both points) and v_i a unit direction: an
    estimate of ||H v||^2, the curvature along v, which bounds gradient explanations' Lipschitz
    constant (Tan & Tian Thm 4.1: Grad <= H).

    How it differs from CURE: CURE uses v = sign(g) / ||sign(g)|| and penalises
    ||g(x + h v) - g(x)||^2 without dividing by h^2 (its weight gamma plays the role of
    weight / h^2 here); ``direction="gradient"`` (default) uses v = g / ||g||, the direction of
    steepest ascent, and ``direction="sign"`` is CURE's. CURE also evaluates the loss at the
    clean point only; here the point is the objective's (x_adv for PGD). Both points are evaluated
    in eval mode, so the shifted pass leaves BatchNorm's running statistics untouched.
    """

    name = "curvature"
    needs_input_grad = True

    def __init__(self, weight: float, h: float, direction: str = "gradient"):
        self.weight, self.h, self.direction = weight, h, direction

    def _unit_direction(self, grad: Tensor) -> Tensor:
        v = grad.detach().sign() if self.direction == "sign" else grad.detach()
        return v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def penalty(self, loss_at, inputs, loss=None):
        loss, inputs = loss_and_inputs(loss_at, inputs, loss)
        grad = input_gradient(loss, inputs)
        shifted = (inputs.detach() + self.h * self._unit_direction(grad).view_as(inputs)).requires_grad_(True)
        grad_shifted = input_gradient(loss_at(shifted).loss, shifted)
        diff = (grad_shifted - grad) / self.h
        return self.weight * diff.pow(2).sum(1).mean()


class ConvOperatorNorm(nn.Module):
    """Parametrisation ``weight / sigma`` with sigma the operator norm (largest singular value) of the
    convolution as a linear map on its actual input shape, zero padding and stride included.

    sigma is estimated by power iteration on the convolution and its adjoint (Gouk et al. 2021;
    Farnia et al. 2019), one step per training forward as in Miyato et al.'s spectral normalisation;
    ``u`` (input-shaped) and ``v`` (output-shaped) persist in the state dict.
    """

    def __init__(self, conv: nn.Conv2d, input_shape: tuple[int, int, int], n_power_iterations: int = 1):
        super().__init__()
        self.n_power_iterations = n_power_iterations
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        self.padding_mode = conv.padding_mode
        self.pad = conv._reversed_padding_repeated_twice
        generator = torch.Generator().manual_seed(0)  # leaves the global stream to weight initialisation
        u = torch.randn(1, *input_shape, generator=generator).to(conv.weight)
        with torch.no_grad():
            v = self.conv(u, conv.weight)
        self.register_buffer("u", u / u.norm())
        self.register_buffer("v", v / v.norm().clamp_min(1e-12))
        self.power_iteration(conv.weight.detach(), 100)  # converged from the start (close top singular values converge slowly)

    def conv(self, u: Tensor, weight: Tensor) -> Tensor:
        """The layer's linear map (no bias), exactly as ``nn.Conv2d`` applies it."""
        if self.padding_mode != "zeros":
            u = nn.functional.pad(u, self.pad, mode=self.padding_mode)
            return nn.functional.conv2d(u, weight, None, self.stride, 0, self.dilation, self.groups)
        return nn.functional.conv2d(u, weight, None, self.stride, self.padding, self.dilation, self.groups)

    def adjoint(self, v: Tensor, weight: Tensor) -> Tensor:
        """The transposed map: a transposed convolution onto the input shape (zero padding), else a
        vector-Jacobian product (exact for any padding mode)."""
        if self.padding_mode == "zeros" and not isinstance(self.padding, str):
            size = self.u.shape[2:]
            return nn.functional.conv_transpose2d(
                v, weight, None, self.stride, self.padding, self.output_padding(size, v.shape[2:], weight),
                self.groups, self.dilation)
        with torch.enable_grad():
            probe = torch.zeros_like(self.u, requires_grad=True)
            (u,) = torch.autograd.grad(self.conv(probe, weight), probe, v)
        return u

    def output_padding(self, size, out_size, weight: Tensor) -> tuple[int, int]:
        """The transposed convolution's output padding that maps back onto exactly ``size``."""
        return tuple(n - ((m - 1) * s - 2 * p + d * (k - 1) + 1) for n, m, s, p, d, k in zip(
            size, out_size, self.stride, self.padding, self.dilation, weight.shape[2:]))

    @torch.no_grad()
    def power_iteration(self, weight: Tensor, steps: int) -> None:
        u, v = self.u, self.v
        for _ in range(steps):
            v = self.conv(u, weight)
            v = v / v.norm().clamp_min(1e-12)
            u = self.adjoint(v, weight)
            u = u / u.norm().clamp_min(1e-12)
        self.u.copy_(u)
        self.v.copy_(v)

    def forward(self, weight: Tensor) -> Tensor:
        if self.training:
            self.power_iteration(weight.detach(), self.n_power_iterations)
        # clones: a later forward updates u and v in place while this graph may still need them
        sigma = (self.v.clone() * self.conv(self.u.clone(), weight)).sum()
        return weight / sigma


def conv_input_shapes(model: nn.Module, input_shape: tuple[int, int, int]) -> dict[nn.Conv2d, tuple[int, int, int]]:
    """Each Conv2d's input shape (C, H, W), from one eval-mode forward of a zero image."""
    shapes: dict[nn.Conv2d, tuple[int, int, int]] = {}

    def record(module, args) -> None:
        shapes.setdefault(module, tuple(args[0].shape[1:]))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with eval_mode(model), torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


class Spectral(Regularizer):
    """Spectral normalisation (Miyato et al. 2018) of every conv and linear weight.

    Linear layers: torch's ``spectral_norm`` (power iteration on the weight matrix, which is the
    layer's operator norm). Conv layers, ``conv_norm="operator"`` (default): the operator norm of
    the convolution itself on its input shape (``ConvOperatorNorm``), so every conv and linear map
    has norm 1. ``conv_norm="reshaped"``: Miyato et al.'s heuristic, the norm of the kernel
    reshaped to an (out, in*k*k) matrix, which is not the operator norm: measured on the digits
    small_cnn, the two convs' operator norms are 3.09x and 1.39x their reshaped norms at
    initialisation. BatchNorm layers are left as they are, so with BatchNorm the network's
    Lipschitz constant is reduced, not bounded by 1.
    """

    name = "spectral"

    def __init__(self, n_power_iterations: int = 1, conv_norm: str = "operator"):
        self.n_power_iterations = int(n_power_iterations)
        self.conv_norm = conv_norm

    def transform_model(self, model, input_shape=None):
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        for module in model.modules():
            if isinstance(module, nn.Linear) or (self.conv_norm == "reshaped" and isinstance(module, nn.Conv2d)):
                spectral_norm(module, n_power_iterations=self.n_power_iterations)
        if self.conv_norm == "reshaped" or not convs:
            return model
        if input_shape is None:
            raise ValueError("reg=spectral needs the input shape (C, H, W) to normalise conv layers by their "
                             "operator norm: pass input_shape to transform_model")
        shapes = conv_input_shapes(model, input_shape)
        for conv in convs:
            if conv not in shapes:
                raise ValueError(f"reg=spectral: a conv layer ({conv}) is not used in the forward pass; its "
                                 "operator norm needs its input shape (reg.conv_norm=reshaped does not)")
            parametrize.register_parametrization(
                conv, "weight", ConvOperatorNorm(conv, shapes[conv], self.n_power_iterations))
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
def curvature(weight: float = 0.01, h: float = 0.01, direction: str = "gradient") -> Regularizer:
    if weight < 0 or h <= 0:
        raise ValueError(f"reg.weight must be >= 0 and reg.h > 0 (got {weight}, {h})")
    if direction not in ("gradient", "sign"):
        raise ValueError(f"reg.direction must be 'gradient' (v = g / ||g||) or 'sign' (CURE's v = sign(g) / "
                         f"||sign(g)||), got {direction!r}")
    return Curvature(weight, h, direction)


@REGULARIZERS.register("spectral")
def spectral(n_power_iterations: int = 1, conv_norm: str = "operator") -> Regularizer:
    if n_power_iterations < 1:
        raise ValueError("reg.n_power_iterations must be >= 1")
    if conv_norm not in ("operator", "reshaped"):
        raise ValueError(f"reg.conv_norm must be 'operator' (the conv's true operator norm) or 'reshaped' "
                         f"(Miyato et al.'s kernel-matrix heuristic), got {conv_norm!r}")
    return Spectral(n_power_iterations, conv_norm)


def build_regularizer(name: str, **kwargs) -> Regularizer:
    return REGULARIZERS.build("reg", name, **kwargs)
