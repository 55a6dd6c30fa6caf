"""Adversarial attacks: one PGD for adversarial training, ``val/adv_acc`` and ``robust_accuracy``.

Inputs are in [0, 1] and the normalisation is inside the model (the project-wide convention), so
the attacks work in pixel space. The model is attacked in eval mode (BatchNorm running
statistics, no dropout; every module's own flag restored afterwards), as torchattacks does.

* :func:`pgd`: projected gradient ascent on the cross-entropy (Madry et al., ICLR 2018), in the
  L-inf ball (signed-gradient steps) or the L2 ball (normalised-gradient steps), with torchattacks'
  PGD / PGDL2 update. Its random start comes through :mod:`rxlit.rng`: with an
  :class:`~rxlit.rng.ExampleRNG` keyed by each example's dataset index, an example's attack does
  not depend on its batch, the batch size or the DDP rank (the loss is summed, not averaged, so an
  example's gradient does not depend on the batch size either); with ``None`` it is torch's
  global generator (adversarial training, where examples have no index).
* :func:`autoattack`: standard AutoAttack (Croce & Hein 2020; torchattacks' APGD-CE, APGD-T, FAB-T,
  Square), seeded per call, not per example.
* :func:`survives`: 1.0 where the label survives one of them, per example.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchattacks
from torch import Tensor, nn

from rxlit import rng
from rxlit.explain.passes import eval_mode
from rxlit.rng import Generator

NORMS = ("linf", "l2")
ATTACKS = ("pgd", "autoattack")
_L2_FLOOR = 1e-10  # torchattacks' eps_for_division: a zero gradient stays a zero step


def check_budget(eps: float, step: float | None = None, steps: int | None = None, prefix: str = "adv") -> None:
    """Refuse impossible attack budgets before any training starts."""
    if eps is None or eps < 0:
        raise ValueError(f"{prefix}.eps must be >= 0 (got {eps}); e.g. {prefix}.eps=0.03137 for 8/255")
    if step is not None and step <= 0:
        raise ValueError(f"{prefix}.step must be > 0 (got {step})")
    if steps is not None and int(steps) < 1:
        raise ValueError(f"{prefix}.steps must be >= 1 (got {steps})")


def check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"unknown attack norm {norm!r}; valid: 'linf', 'l2'")


def random_start(x: Tensor, eps: float, norm: str, generator: Generator) -> Tensor:
    """A start in the ball around ``x`` (clipped to the image box): uniform in the L-inf ball; for
    L2, a uniform direction at a radius ``eps * u``, ``u ~ U(0, 1)`` (torchattacks' PGDL2 start)."""
    batch, shape = x.shape[0], x.shape[1:]
    if norm == "linf":
        u = rng.uniform(generator, batch, shape, device=x.device, dtype=x.dtype)
        return (x + eps * (2 * u - 1)).clamp(0, 1)
    z = rng.normal(generator, batch, shape, device=x.device, dtype=x.dtype)
    radius = eps * rng.uniform(generator, batch, (1,), device=x.device, dtype=x.dtype)
    direction = z / z.flatten(1).norm(dim=1).clamp_min(_L2_FLOOR).view(-1, *[1] * len(shape))
    return (x + direction * radius.view(-1, *[1] * len(shape))).clamp(0, 1)


def pgd(model: nn.Module, x: Tensor, y: Tensor, eps: float, step: float, steps: int, norm: str = "linf",
        generator: Generator = None, start: bool = True) -> Tensor:
    """Adversarial inputs of ``steps`` PGD steps of size ``step`` in the ``norm`` ball of radius ``eps``
    (see the module doc); ``start=False`` starts at ``x`` itself."""
    check_norm(norm)
    check_budget(eps, step, steps, prefix="attack")
    x = x.detach()
    view = (-1, *[1] * (x.dim() - 1))
    adv = random_start(x, eps, norm, generator) if start else x.clone()
    with eval_mode(model):
        for _ in range(int(steps)):  # PGD is sequential; each step is one batched pass
            with torch.enable_grad():
                adv = adv.detach().requires_grad_(True)
                loss = F.cross_entropy(model(adv), y, reduction="sum")
                (grad,) = torch.autograd.grad(loss, adv)
            if norm == "linf":
                adv = x + (adv.detach() + step * grad.sign() - x).clamp(-eps, eps)
            else:
                grad = grad / (grad.flatten(1).norm(dim=1) + _L2_FLOOR).view(view)
                delta = adv.detach() + step * grad - x
                delta = delta * (eps / delta.flatten(1).norm(dim=1)).clamp(max=1).view(view)
                adv = x + delta
            adv = adv.clamp(0, 1)
    return adv.detach()


def autoattack(model: nn.Module, eps: float, norm: str = "linf", n_classes: int = 10, seed: int | None = 0):
    """Standard AutoAttack (Croce & Hein 2020: APGD-CE, APGD-T, FAB-T, Square), torchattacks' port,
    built for one model; call it as ``adv = attack(x, y)``."""
    check_norm(norm)
    check_budget(eps, prefix="attack")
    if n_classes < 4:
        raise ValueError(f"AutoAttack needs at least 4 classes (its targeted attacks use the 4 largest logits); "
                         f"this model has {n_classes}: use PGD (robust_accuracy attack='pgd'; in training "
                         "eval_attack.test_attack=pgd)")
    return torchattacks.AutoAttack(model, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, version="standard",
                                   n_classes=n_classes, seed=seed)


def survives(model: nn.Module, x: Tensor, y: Tensor, attack: str = "pgd", eps: float = 8 / 255,
             step: float = 2 / 255, steps: int = 10, norm: str = "linf", generator: Generator = None,
             n_classes: int | None = None, seed: int | None = None) -> Tensor:
    """1.0 where ``argmax model(adv) == y`` after ``attack`` (``"pgd"``: :func:`pgd` with its random
    start from ``generator``; ``"autoattack"``: :func:`autoattack` with ``seed``, torch's global
    generator forked so the caller's stream is untouched), per example, in ``x``'s dtype."""
    y = torch.as_tensor(y, device=x.device).long()
    if attack == "pgd":
        adv = pgd(model, x, y, eps, step, steps, norm, generator)
    elif attack == "autoattack":
        if n_classes is None:
            with torch.no_grad(), eval_mode(model):
                n_classes = model(x[:1]).shape[1]
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            if seed is not None:
                torch.manual_seed(seed)
            with eval_mode(model):  # torchattacks sets eval mode itself; this restores every module's flag
                adv = autoattack(model, eps, norm, n_classes, seed)(x, y)
    else:
        raise ValueError(f"unknown attack {attack!r}; valid: 'pgd', 'autoattack'")
    with torch.no_grad(), eval_mode(model):
        return (model(adv).argmax(1) == y).to(x.dtype)
