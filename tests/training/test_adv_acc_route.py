"""val/adv_acc and the evaluation's robust_accuracy are one attack: the keyed PGD of
rxlit.metrics.attacks, with each example's random start keyed by its dataset index."""

import pytest
import torch

from rxlit.metrics import compute_metric, robust_accuracy
from rxlit.metrics.attacks import pgd
from rxlit.rng import ExampleRNG
from rxlit.training.module import RxLitModule

INFO = {"name": "t", "num_classes": 10, "in_chans": 1, "image_size": 8, "mean": [0.5], "std": [0.25]}


def module(norm: str, eps: float) -> RxLitModule:
    torch.manual_seed(0)
    return RxLitModule(model={"name": "small_cnn", "hidden": 32}, data_info=INFO, adv={"name": "none"},
                       reg={"name": "none"}, optim={"name": "sgd", "lr": 0.1}, sched={"name": "none"},
                       eval_attack={"n_examples": 12, "norm": norm, "eps": eps, "steps": 4}, seed=5).double()


@pytest.mark.parametrize("norm,eps", [("linf", 0.06), ("l2", 0.2)])
def test_val_adv_acc_is_the_metric_per_example_and_batch_invariant(norm, eps):
    net = module(norm, eps)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(12, 1, 8, 8, generator=g, dtype=torch.float64)
    index = torch.tensor([40, 3, 17, 8, 99, 21, 5, 63, 12, 70, 1, 33])  # dataset indices, not 0..11
    with torch.no_grad():
        y = net.model(x).argmax(1)  # every example correct before the attack
    val = net.adversarial_correct(x, y, index)
    assert 0 < val.sum() < 12, val  # some survive, some do not: a real comparison
    spec = net.eval_spec
    options = dict(eps=spec["eps"], step=spec["step"], steps=spec["steps"], norm=norm, seed=5, index=index)
    torch.testing.assert_close(robust_accuracy(net.model, x, y, **options), val, rtol=0, atol=0)
    torch.testing.assert_close(compute_metric("robust_accuracy", net.model, x, y, **options), val, rtol=0, atol=0)
    # any batching or DDP sharding of the examples: the same per-example results
    for shards in ([slice(0, 5), slice(5, 12)], [slice(r, None, 3) for r in range(3)]):
        parts = torch.zeros(12, dtype=val.dtype)
        for s in shards:
            parts[s] = net.adversarial_correct(x[s], y[s], index[s])
        torch.testing.assert_close(parts, val, rtol=0, atol=0)


def test_keyed_start_is_each_examples_own():
    """The adversarial inputs themselves: example i's is the same alone as in its batch."""
    net = module("linf", 0.06).model.eval()
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(6, 1, 8, 8, generator=g, dtype=torch.float64), torch.arange(6)
    index = torch.arange(100, 106)
    batch = pgd(net, x, y, 0.06, 0.03, 3, generator=ExampleRNG(0, index))
    for i in (0, 4):
        alone = pgd(net, x[i:i + 1], y[i:i + 1], 0.06, 0.03, 3, generator=ExampleRNG(0, index[i:i + 1]))
        torch.testing.assert_close(alone, batch[i:i + 1])
    assert ((batch - x).abs().amax() <= 0.06 + 1e-12) and batch.min() >= 0 and batch.max() <= 1
