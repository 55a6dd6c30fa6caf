"""The double-backprop penalties are correct under DDP: two gloo ranks on half batches give the
same parameter gradient as one process on the whole batch, BatchNorm networks included (the
penalty is computed in eval mode, so it is per-example)."""

import pytest
import torch
from gloo_pair import run_on_two_ranks
from torch import nn

from rxlit.training.objectives import build_objective
from rxlit.training.regularizers import REGULARIZERS

OPTIONS = {"gradnorm": {"weight": 0.5}, "curvature": {"weight": 100.0, "h": 0.1}}


class LossWithPenalty(nn.Module):
    """What the LightningModule's training step computes: mean loss + penalty, in one forward.
    ``with_loss=False`` keeps the penalty alone (train-mode BatchNorm makes the loss's own gradient
    depend on how the batch is split; the penalty's must not)."""

    def __init__(self, net: nn.Module, reg_name: str, with_loss: bool = True):
        super().__init__()
        self.net, self.reg = net, REGULARIZERS.get(reg_name)(**OPTIONS[reg_name])
        self.with_loss = with_loss
        self.reuse = not any(isinstance(m, nn.BatchNorm1d) for m in net.modules())

    def forward(self, x, y):
        trained = build_objective("none").training_loss(self.net, x, y)
        if not self.with_loss:  # (a train-mode forward would also move the running statistics)
            return self.reg.penalty(self.net, trained.at, x)
        inputs = x.clone().requires_grad_(True)
        loss = trained.at(inputs).loss
        return loss.mean() + self.reg.penalty(self.net, trained.at, inputs, loss if self.reuse else None)


def make_problem(batchnorm: bool = False):
    torch.manual_seed(0)
    norm = [nn.BatchNorm1d(12)] if batchnorm else []
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), *norm, nn.Softplus(), nn.Linear(12, 3)).double()
    if batchnorm:
        net[2].running_mean.normal_(0, 0.3)
        net[2].running_var.uniform_(0.5, 2.0)
    x = torch.rand(8, 1, 4, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    return net, x, y


def parameter_grad(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in module.parameters()])


def _ddp_gradient(rank: int, world: int, reg_name: str, batchnorm: bool) -> torch.Tensor:
    from torch.nn.parallel import DistributedDataParallel

    net, x, y = make_problem(batchnorm)
    ddp = DistributedDataParallel(LossWithPenalty(net, reg_name, with_loss=not batchnorm))
    ddp(x[rank::world], y[rank::world]).backward()
    return parameter_grad(ddp.module)


@pytest.mark.ddp
@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain", "batchnorm"])
@pytest.mark.parametrize("reg_name", ["gradnorm", "curvature"])
def test_penalty_gradient_under_ddp_equals_single_process(reg_name, batchnorm):
    ddp_grad = run_on_two_ranks(_ddp_gradient, reg_name, batchnorm)

    net, x, y = make_problem(batchnorm)
    single = LossWithPenalty(net, reg_name, with_loss=not batchnorm)
    single(x, y).backward()
    expected = parameter_grad(single)
    if not batchnorm:  # the penalty matters (else equality would prove nothing)
        penalty_free = LossWithPenalty(make_problem()[0], reg_name)
        penalty_free.reg.weight = 0.0
        penalty_free(x, y).backward()
        assert (expected - parameter_grad(penalty_free)).norm() > 1e-3 * expected.norm()
    else:
        assert expected.norm() > 1e-6
    torch.testing.assert_close(ddp_grad, expected, rtol=1e-9, atol=1e-12)
