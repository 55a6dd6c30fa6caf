"""Captum methods as rxlit explanation methods.

``captum_method(cls, **attr_kwargs)`` returns a callable ``(model, x, target) -> Tensor`` that
:func:`rxlit.explain.explain` accepts as ``method``::

    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
    explain(model, x, method=captum_method(IntegratedGradients, n_steps=50))
    explain(model, x, method=captum_method(lambda m: NoiseTunnel(Saliency(m)), nt_type="smoothgrad",
                                           nt_samples=30, stdevs=0.03, abs=False))

Captum is imported lazily; it is only needed when such a method is built.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rxlit.explain.passes import eval_mode
from rxlit.explain.registry import MethodInfo, check_units, declare


class ProbabilityModel(nn.Module):
    """Softmax probabilities of a classifier, so Captum explains ``output="prob"``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x).softmax(dim=1)


def captum_method(captum_cls: Callable[[nn.Module], object], output: str = "logit", units: str | None = None,
                  **attr_kwargs) -> Callable:
    """Wrap a Captum attribution class (or any ``model -> attribution object`` factory).

    The returned method builds ``captum_cls(model)`` and calls
    ``.attribute(x, target=target, **attr_kwargs)`` with gradients enabled and the model in eval
    mode (restored after). ``output="prob"`` explains the softmax probability instead of the logit.
    ``units`` (``"slope"`` for Saliency, ``"attribution"`` for IntegratedGradients, ...) declares the
    output's units for the faithfulness metrics; Captum's own random draws are not keyed.
    """
    if output not in ("logit", "prob"):
        raise ValueError(f"unknown output {output!r}; valid: 'logit', 'prob'")
    if units is not None:
        check_units(units)

    def method(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
        forward = model if output == "logit" else ProbabilityModel(model)
        with torch.enable_grad(), eval_mode(model):
            attribution = captum_cls(forward).attribute(x.detach().clone().requires_grad_(True), target=target,
                                                           **attr_kwargs)
        return attribution.detach()

    method.__name__ = f"captum_{getattr(captum_cls, '__name__', 'method')}"
    return declare(method, MethodInfo(stochastic=False, units=units))
