"""One LightningModule for every training regime (standard, adversarial, Lipschitz-regularised)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor

from rxlit.distributed import collective_section
from rxlit.explain.passes import eval_mode
from rxlit.metrics.model import robust_accuracy
from rxlit.models import build_model
from rxlit.training.attacks import eval_attack_spec
from rxlit.training.batchnorm import BatchStatistics
from rxlit.training.divergence import DivergenceGuard, NonFiniteLossError, divergence_message
from rxlit.training.objectives import build_objective
from rxlit.training.optim import build_optimizer, build_scheduler, parameter_groups
from rxlit.training.regularizers import build_regularizer, mode_dependent

MODEL_DATA_KEYS = ("num_classes", "in_chans", "image_size", "mean", "std")


def build_network(model: dict, data_info: dict, reg: dict) -> torch.nn.Module:
    """The backbone with its normalisation layer and any weight transform (spectral norm)."""
    spec = dict(model)
    net = build_model(spec.pop("name"), **{k: data_info[k] for k in MODEL_DATA_KEYS}, **spec)
    regularizer = dict(reg)
    input_shape = (int(data_info["in_chans"]), *_pair(data_info["image_size"]))
    return build_regularizer(regularizer.pop("name"), **regularizer).transform_model(net, input_shape)


def _pair(size) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int | float) else tuple(int(s) for s in size)


class RxLitModule(L.LightningModule):
    """Trains ``model`` with the ``adv`` objective plus the ``reg`` penalty.

    Logs ``train/loss``, ``train/acc`` (accuracy on the clean batch), ``train/adv_acc`` (on the
    adversarial inputs the loss trains on; adversarial objectives only), ``train/penalty``,
    ``val/loss``, ``val/acc``, ``val/adv_acc`` (the fixed evaluation attack on a fixed validation
    subset, every epoch: the keyed PGD of :func:`rxlit.metrics.robust_accuracy`) and the same under
    ``test/`` (``test/adv_acc`` by ``eval_attack.test_attack``: the same PGD, or AutoAttack). All
    arguments are plain containers so checkpoints load weights-only.
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
        self.eval_spec = eval_attack_spec(eval_attack or {}, None, self.objective.name)
        # Without BatchNorm or dropout the penalty reuses the training forward; otherwise it runs its
        # own forward on the training batch statistics, held fixed (batchnorm.py says why).
        self._penalty_reuses_forward = not mode_dependent(self.model)
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
        objective = self.objective.training_loss(self.model, x, y)
        inputs, loss_at = objective.inputs, objective.at
        reuse = self.regularizer.needs_input_grad and self._penalty_reuses_forward
        if reuse:
            inputs = inputs.detach().requires_grad_(True)
        if self.regularizer.needs_input_grad and not reuse:
            stats = BatchStatistics(self.model)
            with stats.record():
                out = objective.at(inputs)
            loss_at = stats.frozen(objective.at)
        else:
            out = objective.at(inputs)
        loss = out.loss.mean()
        penalty = self.regularizer.penalty(loss_at, inputs, out.loss if reuse else None)
        total = loss + penalty
        self._check_finite_loss(total, penalty)
        logs = {"train/loss": total, "train/acc": self._clean_accuracy(x, y, out.clean_logits)}
        if self.objective.adversarial:
            logs["train/adv_acc"] = (out.adv_logits.argmax(1) == y).float().mean()
        if self.regularizer.needs_input_grad:
            logs["train/penalty"] = penalty
        self.log_dict(logs, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(y))
        self.log("loss", total, on_step=True, on_epoch=False, prog_bar=True, logger=False)
        return total

    def _clean_accuracy(self, x: Tensor, y: Tensor, clean_logits: Tensor | None) -> Tensor:
        """Accuracy on the clean batch: from the loss's own clean logits where it computes them
        (standard, TRADES), else one extra forward without gradients in eval mode (PGD, FGSM), which
        leaves BatchNorm's running statistics alone."""
        if clean_logits is None:
            with torch.no_grad(), eval_mode(self.model):
                clean_logits = self.model(x)
        return (clean_logits.argmax(1) == y).float().mean()

    def _check_finite_inputs(self, x: Tensor) -> None:
        if not torch.isfinite(x).all():
            raise ValueError("a training batch contains NaN or inf pixels: check the data set files "
                             "(inputs must be finite and in [0, 1])")

    def _check_finite_loss(self, loss: Tensor, penalty: Tensor) -> None:
        """Stop on a NaN/inf or exploding loss (:mod:`rxlit.training.divergence`), agreed by every rank."""
        reason = self.divergence.update(float(loss.detach()))
        trainer = self._trainer  # None when the step runs outside a Trainer (benchmarks, notebooks)
        healthy = reason is None
        if trainer is not None and trainer.world_size > 1:
            with collective_section(trainer, f"the divergence check of step {self.global_step}", flush=False):
                healthy = trainer.strategy.reduce_boolean_decision(healthy, all=True)
        if healthy:
            return
        message = divergence_message(reason or "diverged on another rank", self.current_epoch, self.global_step,
                                     dict(self.hparams.optim))
        share = float(penalty.detach()) / max(abs(float(loss.detach())), 1e-12)
        if self.regularizer.needs_input_grad and not share <= 0.5:  # NaN counts: the penalty is the culprit
            message = (f"the reg={self.regularizer.name} penalty is {float(penalty):.4g} of a total loss of "
                       f"{float(loss):.4g}: lower reg.weight (now {self.regularizer.weight:g}) first; {message}")
        raise NonFiniteLossError(message)

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

    def adversarial_correct(self, x: Tensor, y: Tensor, index: Tensor, stage: str = "val") -> Tensor:
        """Per example, 1.0 where the label survives the evaluation attack (``eval_attack`` config):
        :func:`rxlit.metrics.robust_accuracy`, PGD for validation, PGD or standard AutoAttack
        (``eval_attack.test_attack``) for the test split. PGD's random start is keyed by (seed, the
        example's ``index`` in its split), so every epoch attacks from the same starting points and an
        example's result does not depend on the world size or on which examples share its batch."""
        spec = self.eval_spec
        attack = spec["test_attack"] if stage == "test" else "pgd"
        return robust_accuracy(self.model, self._layout(x), y, attack=attack, eps=spec["eps"], step=spec["step"],
                               steps=spec["steps"], norm=spec["norm"], seed=self.hparams.seed, index=index,
                               n_classes=int(self.hparams.data_info["num_classes"]))

    def _log_adversarial_accuracy(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.eval_spec["n_examples"] <= 0 or datamodule is None or not hasattr(datamodule, "eval_subset"):
            return
        x, y, index = datamodule.eval_subset(self.eval_spec["n_examples"], split=stage)
        rank, world = self.global_rank, self.trainer.world_size
        x, y, index = x[rank::world].to(self.device), y[rank::world].to(self.device), index[rank::world]
        with collective_section(self.trainer, f"the {stage}/adv_acc reduction"):
            correct = self.adversarial_correct(x, y, index, stage).sum().float()
            total = torch.tensor(float(len(y)), device=self.device)
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
