"""The double-backprop penalties are correct under DDP: two gloo ranks on half batches give the
same parameter gradient as one process on the whole batch. With BatchNorm the penalty uses the
training batch's statistics held fixed; given the same statistics (SyncBatchNorm's, all-reduced
over the ranks) it is per-example, so DDP equals one process there too."""

import pytest
import torch
from gloo_pair import run_on_two_ranks
from torch import nn

from rxlit.training.batchnorm import BatchStatistics, batch_moments
from rxlit.training.objectives import build_objective
from rxlit.training.regularizers import REGULARIZERS

OPTIONS = {"gradnorm": {"weight": 0.5}, "curvature": {"weight": 100.0, "h": 0.1}}


class LossWithPenalty(nn.Module):
    """What the LightningModule's training step computes: mean loss + penalty, in one forward."""

    def __init__(self, net: nn.Module, reg_name: str):
        super().__init__()
        self.net, self.reg = net, REGULARIZERS.get(reg_name)(**OPTIONS[reg_name])

    def forward(self, x, y):
        trained = build_objective("none").training_loss(self.net, x, y)
        inputs = x.clone().requires_grad_(True)
        loss = trained.at(inputs).loss
        return loss.mean() + self.reg.penalty(trained.at, inputs, loss)


class PenaltyWithFixedStatistics(nn.Module):
    """The BatchNorm penalty alone, on statistics recorded from the whole batch (what SyncBatchNorm
    gives every rank); the train-mode loss's own gradient depends on how the batch is split."""

    def __init__(self, net: nn.Module, reg_name: str, whole_batch: torch.Tensor):
        super().__init__()
        self.net, self.reg = net, REGULARIZERS.get(reg_name)(**OPTIONS[reg_name])
        self.stats = BatchStatistics(net)
        with torch.no_grad(), self.stats.record():
            net(whole_batch)
        net.train()

    def forward(self, x, y):
        return self.reg.penalty(self.stats.frozen(build_objective("none").training_loss(self.net, x, y).at), x)


def make_problem(batchnorm: bool = False):
    torch.manual_seed(0)
    norm = [nn.BatchNorm1d(12)] if batchnorm else []
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), *norm, nn.Softplus(), nn.Linear(12, 3)).double()
    x = torch.rand(8, 1, 4, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    return net, x, y


def make_module(reg_name: str, batchnorm: bool) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    net, x, y = make_problem(batchnorm)
    module = PenaltyWithFixedStatistics(net, reg_name, x) if batchnorm else LossWithPenalty(net, reg_name)
    return module, x, y


def parameter_grad(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in module.parameters()])


def _ddp_gradient(rank: int, world: int, reg_name: str, batchnorm: bool) -> torch.Tensor:
    from torch.nn.parallel import DistributedDataParallel

    module, x, y = make_module(reg_name, batchnorm)
    ddp = DistributedDataParallel(module)
    ddp(x[rank::world], y[rank::world]).backward()
    return parameter_grad(ddp.module)


@pytest.mark.ddp
@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain", "batchnorm"])
@pytest.mark.parametrize("reg_name", ["gradnorm", "curvature"])
def test_penalty_gradient_under_ddp_equals_single_process(reg_name, batchnorm):
    ddp_grad = run_on_two_ranks(_ddp_gradient, reg_name, batchnorm)

    single, x, y = make_module(reg_name, batchnorm)
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


def _sync_moments(rank: int, world: int, x: torch.Tensor):
    return batch_moments(nn.SyncBatchNorm(3), x[rank::world])


@pytest.mark.ddp
def test_syncbatchnorm_statistics_are_the_whole_batchs():
    """The statistics the penalty replays for SyncBatchNorm are the process group's (its all-reduce
    runs on gloo; SyncBatchNorm's own forward needs CUDA)."""
    x = torch.randn(8, 3, 2, 2, dtype=torch.float64) * 2 + 1
    mean, var = run_on_two_ranks(_sync_moments, x)
    torch.testing.assert_close(mean, x.mean((0, 2, 3)))
    torch.testing.assert_close(var, x.var((0, 2, 3), unbiased=False))
