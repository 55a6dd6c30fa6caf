"""The double-backprop penalties are correct under DDP: two gloo ranks on half batches give the
same parameter gradient as one process on the whole batch."""

import pytest
import torch
from gloo_pair import run_on_two_ranks
from torch import nn

from rxlit.training.regularizers import REGULARIZERS

OPTIONS = {"gradnorm": {"weight": 0.5}, "curvature": {"weight": 100.0, "h": 0.1}}


class LossWithPenalty(nn.Module):
    """What the LightningModule's training step computes: mean loss + penalty, in one forward."""

    def __init__(self, net: nn.Module, reg_name: str):
        super().__init__()
        self.net, self.reg = net, REGULARIZERS.get(reg_name)(**OPTIONS[reg_name])

    def forward(self, x, y):
        inputs = x.clone().requires_grad_(True)
        per_example = nn.functional.cross_entropy(self.net(inputs), y, reduction="none")
        return per_example.mean() + self.reg.penalty(self.net, inputs, y, per_example)


def make_problem():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Softplus(), nn.Linear(12, 3)).double()
    x = torch.rand(8, 1, 4, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    return net, x, y


def parameter_grad(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in module.parameters()])


def _ddp_gradient(rank: int, world: int, reg_name: str) -> torch.Tensor:
    from torch.nn.parallel import DistributedDataParallel

    net, x, y = make_problem()
    ddp = DistributedDataParallel(LossWithPenalty(net, reg_name))
    ddp(x[rank::world], y[rank::world]).backward()
    return parameter_grad(ddp.module)


@pytest.mark.ddp
@pytest.mark.parametrize("reg_name", ["gradnorm", "curvature"])
def test_penalty_gradient_under_ddp_equals_single_process(reg_name):
    ddp_grad = run_on_two_ranks(_ddp_gradient, reg_name)

    net, x, y = make_problem()
    single = LossWithPenalty(net, reg_name)
    single(x, y).backward()
    expected = parameter_grad(single)
    penalty_free = LossWithPenalty(make_problem()[0], reg_name)
    penalty_free.reg.weight = 0.0
    penalty_free(x, y).backward()
    # the penalty matters (else equality would prove nothing) and DDP reproduces it exactly
    assert (expected - parameter_grad(penalty_free)).norm() > 1e-3 * expected.norm()
    torch.testing.assert_close(ddp_grad, expected, rtol=1e-9, atol=1e-12)
