"""rxlit.rng: counter-based noise keyed by (seed, example index, epoch, stream)."""

import math

import pytest
import torch

from rxlit import rng
from rxlit.rng import ExampleRNG


def test_same_key_same_numbers():
    a, b = ExampleRNG(3, [5, 9], epoch=1), ExampleRNG(3, [5, 9], epoch=1)
    for _ in range(3):  # successive draws advance both counters identically
        torch.testing.assert_close(a.normal((4, 4)), b.normal((4, 4)), rtol=0, atol=0)
        torch.testing.assert_close(a.uniform((7,)), b.uniform((7,)), rtol=0, atol=0)


def test_successive_draws_seeds_and_epochs_differ():
    a = ExampleRNG(3, [5])
    first, second = a.normal((100,)), a.normal((100,))
    assert not torch.equal(first, second)
    assert not torch.equal(ExampleRNG(4, [5]).normal((100,)), first)
    assert not torch.equal(ExampleRNG(3, [5], epoch=1).normal((100,)), first)


def test_an_example_alone_equals_the_same_example_in_a_batch():
    batch = ExampleRNG(0, torch.arange(10, 42), epoch=2)
    alone = ExampleRNG(0, [17], epoch=2)
    spawned_batch, spawned_alone = batch.spawn(), alone.spawn()
    torch.testing.assert_close(batch.normal((3, 8, 8))[7], alone.normal((3, 8, 8))[0], rtol=0, atol=0)
    torch.testing.assert_close(spawned_batch.uniform((5,))[7], spawned_alone.uniform((5,))[0], rtol=0, atol=0)
    # a subset continues from the same stream position
    sub = batch.subset(slice(7, 8))
    torch.testing.assert_close(batch.normal((6,))[7], sub.normal((6,))[0], rtol=0, atol=0)


def test_module_functions_route_generators():
    g = ExampleRNG(1, [0, 1, 2])
    assert rng.normal(g, 3, (2, 2), dtype=torch.float64).shape == (3, 2, 2)
    with pytest.raises(ValueError, match="3 example keys"):
        rng.uniform(ExampleRNG(1, [0, 1, 2]), 4, (2,))
    t1, t2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    torch.testing.assert_close(rng.normal(t1, 2, (5,)), rng.normal(t2, 2, (5,)), rtol=0, atol=0)
    assert rng.subset(t1, slice(0, 1)) is t1 and rng.spawn(t1) is t1
    assert rng.normal(None, 2, (3,)).shape == (2, 3)


def test_moments_of_normal_and_uniform():
    n = 200_000
    z = ExampleRNG(0, torch.arange(4)).normal((n // 4,), dtype=torch.float64).reshape(-1)
    u = ExampleRNG(0, torch.arange(4)).uniform((n // 4,), dtype=torch.float64).reshape(-1)
    se = 1 / math.sqrt(n)
    assert abs(z.mean()) < 5 * se and abs(z.var() - 1) < 5 * math.sqrt(2) * se
    assert abs((z ** 3).mean()) < 5 * math.sqrt(15) * se and abs((z ** 4).mean() - 3) < 5 * math.sqrt(96) * se
    assert 0 < u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 5 * se / math.sqrt(12) and abs(u.var() - 1 / 12) < 5 * se * 0.075
    # Kolmogorov-Smirnov against N(0, 1) and U(0, 1)
    for sample, cdf in ((z, lambda v: 0.5 * (1 + torch.erf(v / math.sqrt(2)))), (u, lambda v: v)):
        s = sample.sort().values
        ks = (cdf(s) - torch.arange(1, n + 1, dtype=torch.float64) / n).abs().max()
        assert ks < 1.95 / math.sqrt(n)  # 0.1% level


def test_independence_across_examples_streams_and_elements():
    g = ExampleRNG(0, torch.arange(64))
    child = ExampleRNG(0, torch.arange(64)).spawn()
    a = g.normal((2000,), dtype=torch.float64)
    b = g.normal((2000,), dtype=torch.float64)  # next draw of the same stream
    c = child.normal((2000,), dtype=torch.float64)
    bound = 5 / math.sqrt(2000)
    for other in (b, c, a.roll(1, 0)):  # next draw, spawned stream, neighbouring example
        corr = ((a - a.mean(1, keepdim=True)) * (other - other.mean(1, keepdim=True))).mean(1) / (
            a.std(1) * other.std(1))
        assert corr.abs().max() < bound
    # neighbouring elements of one example, and neighbouring example indices
    lag = (a[:, 1:] * a[:, :-1]).mean()
    assert abs(lag) < 5 / math.sqrt(64 * 2000)
    assert (a[0] != a[1]).all()


def test_large_stream_numbers_do_not_overflow():
    out = ExampleRNG(0, [0, 1], stream=2**32 + 10**6).normal((3,))
    assert torch.isfinite(out).all()


def test_blocked_int32_hash_equals_the_int64_reference():
    from rxlit.rng import _BLOCK, _mix32, hash_counters

    keys = torch.tensor([0, 1, 2**31 - 1, 2**31, 2**32 - 1, 12345678901 & 0xFFFFFFFF], dtype=torch.int64)
    for count in (1, 7, _BLOCK + 3):  # one block, and several blocks along the counter
        counter = torch.arange(count, dtype=torch.int64).view(1, -1)
        k = keys.view(-1, 1)
        expected = _mix32(_mix32(counter ^ k) + k * 3 + 0x165667B1)
        got = hash_counters(keys, 0, count).to(torch.int64) & 0xFFFFFFFF
        assert torch.equal(got, expected)
    # many short rows: several rows per block
    many = torch.arange(3 * _BLOCK // 5, dtype=torch.int64)
    expected = _mix32(_mix32(torch.arange(5).view(1, -1) ^ many.view(-1, 1)) + many.view(-1, 1) * 3 + 0x165667B1)
    assert torch.equal(hash_counters(many, 0, 5).to(torch.int64) & 0xFFFFFFFF, expected)


def test_normal_uses_both_box_muller_outputs_independently():
    z = ExampleRNG(0, torch.arange(8)).normal((20001,), dtype=torch.float64)  # odd: the sine half is cut
    half = 10001
    cos, sin = z[:, : half - 1].reshape(-1), z[:, half:].reshape(-1)
    corr = ((cos - cos.mean()) * (sin - sin.mean())).mean() / (cos.std() * sin.std())
    assert abs(corr) < 5 / math.sqrt(cos.numel())
    # the squared pair radius is chi-square with 2 degrees of freedom: mean 2, variance 4
    r2 = cos**2 + sin**2
    assert abs(r2.mean() - 2) < 5 * 2 / math.sqrt(r2.numel())


def test_numbers_do_not_depend_on_the_block_size(monkeypatch):
    # the accelerator block size is used off the CPU; tiling must never change a number
    import rxlit.rng as module

    reference = ExampleRNG(2, torch.arange(7)), ExampleRNG(2, torch.arange(7))
    z, u = reference[0].normal((3, 33)), reference[1].uniform((99,))
    for size in (1, 50, 1 << 20):
        monkeypatch.setattr(module, "block_size", lambda device, size=size: size)
        torch.testing.assert_close(ExampleRNG(2, torch.arange(7)).normal((3, 33)), z, rtol=0, atol=0)
        torch.testing.assert_close(ExampleRNG(2, torch.arange(7)).uniform((99,)), u, rtol=0, atol=0)
