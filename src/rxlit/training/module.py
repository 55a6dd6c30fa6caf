"""One LightningModule for every training regime (standard, adversarial, Lipschitz-regularised)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor

from rxlit.distributed import collective_section
from rxlit.models import build_model
from rxlit.training.attacks import pgd
from rxlit.training.divergence import DivergenceGuard, NonFiniteLossError, divergence_message
from rxlit.training.objectives import build_objective
from rxlit.training.optim import build_optimizer, build_scheduler, parameter_groups
from rxlit.training.regularizers import build_regularizer

MODEL_DATA_KEYS = ("num_classes", "in_chans", "image_size", "mean", "std")


def build_network(model: dict, data_info: dict, reg: dict) -> torch.nn.Module:
    """The backbone with its normalisation layer and any weight transform (spectral norm)."""
    spec = dict(model)
    net = build_model(spec.pop("name"), **{k: data_info[k] for k in MODEL_DATA_KEYS}, **spec)
    regularizer = dict(reg)
    return build_regularizer(regularizer.pop("name"), **regularizer).transform_model(net)


class RxLitModule(L.LightningModule):
    """Trains ``model`` with the ``adv`` objective plus the ``reg`` penalty.

    Logs ``train/loss``, ``train/acc`` (accuracy on the inputs the loss is trained on: adversarial
    ones for PGD/FGSM, clean ones for standard and TRADES), ``val/loss``, ``val/acc``,
    ``val/adv_acc`` (a fixed PGD evaluation attack on a fixed validation subset, every epoch) and
    the same under ``test/``. All arguments are plain containers so checkpoints load weights-only.
    """

    def __init__(self, model: dict, data_info: dict, adv: dict, reg: dict, optim: dict, sched: dict,
                 eval_attack: dict, seed: int = 0, channels_last: bool = False,
                 run_config: dict | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.model = build_network(model, data_info, reg)
        adv_spec, reg_spec = dict(adv), dict(reg)
        self.objective = build_objective(adv_spec.pop("name"), **adv_spec)
        self.regularizer = build_regularizer(reg_spec.pop("name"), **reg_spec)
        self._eval_attack = None
        self.divergence = DivergenceGuard(data_info["num_classes"], **dict((run_config or {}).get("divergence") or {}))
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(self._layout(x))

    def _layout(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else x

    # ----------------------------------------------------------------------------------- training
    def training_step(self, batch, batch_idx):
        x, y = batch
        self._check_finite_inputs(x)
        x = self._layout(x)
        inputs = self.objective.perturb(self.model, x, y)
        if self.regularizer.needs_input_grad:
            inputs = inputs.detach().requires_grad_(True)
        logits = self.model(inputs)
        per_example = self.objective.loss(self.model, x, inputs, logits, y)
        loss = per_example.mean()
        penalty = self.regularizer.penalty(self.model, inputs, y, per_example)
        total = loss + penalty
        self._check_finite_loss(total)
        acc = (logits.argmax(1) == y).float().mean()
        logs = {"train/loss": total, "train/acc": acc}
        if self.regularizer.name != "none" and self.regularizer.needs_input_grad:
            logs["train/penalty"] = penalty
        self.log_dict(logs, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(y))
        self.log("loss", total, on_step=True, on_epoch=False, prog_bar=True, logger=False)
        return total

    def _check_finite_inputs(self, x: Tensor) -> None:
        if not torch.isfinite(x).all():
            raise ValueError("a training batch contains NaN or inf pixels: check the data set files "
                             "(inputs must be finite and in [0, 1])")

    def _check_finite_loss(self, loss: Tensor) -> None:
        """Stop on a NaN/inf or exploding loss (:mod:`rxlit.training.divergence`), agreed by every rank."""
        reason = self.divergence.update(float(loss.detach()))
        trainer = self._trainer  # None when the step runs outside a Trainer (benchmarks, notebooks)
        healthy = reason is None
        if trainer is not None and trainer.world_size > 1:
            with collective_section(trainer, f"the divergence check of step {self.global_step}"):
                healthy = trainer.strategy.reduce_boolean_decision(healthy, all=True)
        if healthy:
            return
        raise NonFiniteLossError(divergence_message(reason or "diverged on another rank", self.current_epoch,
                                                    self.global_step, dict(self.hparams.optim)))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["divergence_guard"] = self.divergence.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.divergence.load_state_dict(checkpoint.get("divergence_guard", {}))

    # --------------------------------------------------------------------------------- evaluation
    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def _eval_step(self, batch, stage: str) -> None:
        x, y = batch
        logits = self(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        self.log_dict({f"{stage}/loss": loss, f"{stage}/acc": acc}, on_step=False, on_epoch=True,
                      sync_dist=True, batch_size=len(y), prog_bar=stage == "val")

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._log_adversarial_accuracy("val")

    def on_test_epoch_end(self) -> None:
        self._log_adversarial_accuracy("test")

    def eval_attack(self):
        """The fixed evaluation attack (PGD, ``eval_attack`` config), built once."""
        spec = self.hparams.eval_attack
        if self._eval_attack is None and spec and spec.get("n_examples", 0) > 0:
            self._eval_attack = pgd(self.model, spec["eps"], spec["step"], spec["steps"],
                                    spec.get("norm", "linf"), random_start=True)
        return self._eval_attack

    def adversarial_accuracy(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(correct, total) under the evaluation attack; the random start is seeded, so every epoch
        attacks the same examples from the same starting points."""
        attack = self.eval_attack()
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            torch.manual_seed(self.hparams.seed + 7919 * self.global_rank)
            adv = attack(self._layout(x), y)
        with torch.no_grad():
            correct = (self.model(adv).argmax(1) == y).sum()
        return correct.float(), torch.tensor(float(len(y)), device=x.device)

    def _log_adversarial_accuracy(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.eval_attack() is None or datamodule is None or not hasattr(datamodule, "eval_subset"):
            return
        x, y, _ = datamodule.eval_subset(self.hparams.eval_attack["n_examples"], split=stage)
        rank, world = self.global_rank, self.trainer.world_size
        x, y = x[rank::world].to(self.device), y[rank::world].to(self.device)
        with collective_section(self.trainer, f"the {stage}/adv_acc reduction"):
            correct, total = self.adversarial_accuracy(x, y)
            correct = self.trainer.strategy.reduce(correct, reduce_op="sum")
            total = self.trainer.strategy.reduce(total, reduce_op="sum")
            # equal on every rank already: sync_dist averages equal numbers (exact) and keeps Lightning quiet
            self.log(f"{stage}/adv_acc", correct / total.clamp_min(1), prog_bar=stage == "val", sync_dist=True)

    # ---------------------------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> dict[str, Any]:
        spec = dict(self.hparams.optim)
        params = parameter_groups(self.model, spec.get("weight_decay", 0.0))
        optimizer = build_optimizer(params, **spec)
        max_epochs = self.trainer.max_epochs if self.trainer and self.trainer.max_epochs else 1
        scheduler = build_scheduler(optimizer, max_epochs, **self.hparams.sched)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
