"""Determinism: same generator -> same numbers, whatever the chunk size or batch composition."""

import pytest
import torch

from rxlit.explain import explain, grid_mask
from rxlit.rng import ExampleRNG

# Small quickshift superpixels: 12-18 groups on these 8x8 images, a different count per image,
# so the batch pads to the largest and "alone vs in batch" exercises the empty groups.
SUPERPIXELS = {"features": "quickshift", "feature_options": {"kernel_size": 1, "max_dist": 8}}
STOCHASTIC = [
    ("smoothgrad", {"n_samples": 5}),
    ("unigrad", {"n_samples": 5}),
    ("smoothed", {"base": "lime", "n_samples": 3, "kernel": "uniform", "base_options": {"n_samples": 6}}),
    ("smoothed", {"base": "integrated_gradients", "n_samples": 3, "base_options": {"steps": 3}}),
    ("lime", {"n_samples": 12}),
    ("lime", {"n_samples": 12, **SUPERPIXELS}),
    ("kernel_shap", {"n_samples": 12}),
    ("kernel_shap", {"n_samples": 12, **SUPERPIXELS}),
    ("clime", {"n_samples": 12}),
    ("clime", {"n_samples": 12, **SUPERPIXELS}),
    ("noisy_baseline", {"n_samples": 12}),
]
IDS = [f"{m}-{i}" for i, (m, _) in enumerate(STOCHASTIC)]


@pytest.mark.parametrize("method,options", STOCHASTIC, ids=IDS)
def test_same_seed_same_result_and_chunk_size_free(cnn, images, method, options):
    def run(seed, **extra):
        return explain(cnn, images, 1, method, generator=torch.Generator().manual_seed(seed), **options, **extra)

    reference = run(0)
    assert torch.equal(reference, run(0))
    assert not torch.allclose(reference, run(1))
    assert torch.allclose(reference, run(0, chunk_size=1), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method,options", STOCHASTIC, ids=IDS)
def test_example_rng_alone_equals_in_batch(cnn, method, options):
    torch.manual_seed(3)
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    target = torch.tensor([0, 2, 4])
    batch = explain(cnn, x, target, method, generator=ExampleRNG(7, [10, 11, 12]), **options)
    alone = explain(cnn, x[1:2], target[1:2], method, generator=ExampleRNG(7, [11]), **options)
    assert torch.allclose(batch[1:2], alone, rtol=1e-9, atol=1e-12)


def test_deterministic_methods_are_chunk_size_free(cnn, images):
    for method, options in (("occlusion", {}), ("square", {"max_side": 2}), ("guided_backprop", {}),
                            ("integrated_gradients", {"steps": 4}), ("grad_x_input", {})):
        assert torch.allclose(explain(cnn, images, 1, method, **options),
                              explain(cnn, images, 1, method, chunk_size=1, **options), rtol=1e-9, atol=1e-12)


def test_smoothed_grad_is_smoothgrad_with_the_same_noise(cnn, images):
    one = images[:1]
    smoothed = explain(cnn, one, 3, "smoothed", base="grad", sigma=0.05, n_samples=7, generator=torch.Generator().manual_seed(5))
    smoothgrad = explain(cnn, one, 3, "smoothgrad", sigma=0.05, n_samples=7, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(smoothed, smoothgrad, rtol=1e-10, atol=1e-13)


def test_smoothed_prob_averages_probabilities(cnn, images):
    """smoothed(base=grad, output=prob) = grad E[p(x + z)] = E[grad p(x + z)]."""
    one = images[:1]
    smoothed = explain(cnn, one, 3, "smoothed", base="grad", n_samples=5, output="prob", generator=torch.Generator().manual_seed(2))
    smoothgrad = explain(cnn, one, 3, "smoothgrad", n_samples=5, output="prob", generator=torch.Generator().manual_seed(2))
    assert torch.allclose(smoothed, smoothgrad, rtol=1e-9, atol=1e-13)


def test_grid_groups_fixed_regardless_of_batch(cnn, images):
    mask = grid_mask(8, 8, n_groups=16)
    a = explain(cnn, images, 1, "lime", features=mask, n_samples=10, generator=ExampleRNG(1, [0, 1]))
    b = explain(cnn, images, 1, "lime", features=mask.expand(2, 8, 8), n_samples=10, generator=ExampleRNG(1, [0, 1]))
    assert torch.equal(a, b)
