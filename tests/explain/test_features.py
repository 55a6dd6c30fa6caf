"""Feature groups: grid patches, quickshift superpixels, label tensors with empty groups."""

import pytest
import torch

from rxlit.explain import explain, feature_groups, grid_mask, quickshift_mask


def test_grid_mask_counts_and_shapes():
    mask = grid_mask(32, 32, n_groups=64)
    assert mask.shape == (32, 32) and mask.max() == 63
    assert torch.equal(torch.bincount(mask.flatten()), torch.full((64,), 16))  # 4x4 patches
    assert grid_mask(8, 8, side=3).max() == 8  # 3x3 grid, last patches cropped
    assert grid_mask(8, 16, n_groups=8).unique().numel() == 8  # 2 x 4 on a wide image


def test_groups_broadcast_to_every_pixel_and_channel():
    x = torch.rand(2, 3, 4, 4)
    groups = feature_groups(x, "grid", n_features=4)
    assert groups.k == 4 and groups.active.all()
    out = groups.broadcast(torch.tensor([[1.0, 2, 3, 4], [5, 6, 7, 8]]), x.shape)
    assert torch.equal(out[0, :, 0, 0], torch.ones(3)) and torch.equal(out[1, 2, 3, 3], torch.tensor(8.0))


def test_label_tensor_with_empty_groups():
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    mask = torch.zeros(2, 4, 4, dtype=torch.long)
    mask[0, 2:] = 1  # image 0: groups {0, 1}
    mask[1, :, 2:] = 3  # image 1: groups {0, 3}
    groups = feature_groups(x, mask)
    assert groups.k == 4
    assert groups.active.tolist() == [[True, True, False, False], [True, False, False, True]]
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).double()
    for method in ("lime", "kernel_shap", "clime"):
        out = explain(model, x, 0, method, features=mask, n_samples=20, generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(out).all()
        # every pixel carries its own group's weight
        assert out[0, 0, :2].unique().numel() == 1 and out[1, 0, :, 2:].unique().numel() == 1


def test_quickshift_labels_are_contiguous_per_image():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16)
    masks = quickshift_mask(x, kernel_size=1, max_dist=8)
    assert masks.shape == (2, 16, 16) and masks.dtype == torch.long
    for m in masks:
        assert torch.equal(m.unique(), torch.arange(int(m.max()) + 1))
    grey = quickshift_mask(x[:, :1], kernel_size=1, max_dist=8)
    assert grey.shape == (2, 16, 16)


def test_bad_features_are_refused():
    x = torch.rand(1, 3, 4, 4)
    with pytest.raises(ValueError, match="valid: grid, quickshift, elements"):
        feature_groups(x, "slic")
    with pytest.raises(ValueError, match="does not broadcast"):
        feature_groups(x, torch.zeros(5, 5, dtype=torch.long))


def test_shared_and_per_image_labels_expand_alike():
    """A mask shared by the batch takes the column-gather path; a per-image one the full gather."""
    x = torch.rand(3, 2, 4, 4)
    shared = feature_groups(x, grid_mask(4, 4, n_groups=4))
    labels = grid_mask(4, 4, n_groups=4).repeat(3, 1, 1)
    labels[2] = 3 - labels[2]  # one image differs: no shared labels
    per_image = feature_groups(x, labels)
    assert shared.shared is not None and per_image.shared is None
    coalitions = torch.rand(5, 4)
    rows = torch.tensor([0, 0, 1, 2, 2])
    expected = torch.stack([coalitions[r, labels[b].flatten().repeat(2)] for r, b in enumerate(rows.tolist())])
    assert torch.equal(per_image.expand(coalitions, rows), expected)
    assert torch.equal(shared.expand(coalitions[:2], rows[:2]), expected[:2])


def test_scalar_and_tensor_baselines_agree():
    """A scalar baseline is added as a number, a tensor one gathered per row: same result."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                                torch.nn.Linear(72, 3)).double()
    for method in ("lime", "kernel_shap"):
        runs = [explain(model, x, 1, method, n_samples=16, n_features=16, baseline=baseline,
                        generator=torch.Generator().manual_seed(0))
                for baseline in (0.3, torch.full_like(x, 0.3))]
        assert torch.allclose(runs[0], runs[1], rtol=1e-12, atol=1e-14), method


@pytest.mark.parametrize("height,width,n_groups", [(32, 32, 100), (8, 8, 16), (8, 12, 10), (5, 7, 1000)])
def test_faithfulness_groups_are_lime_grid_patches(height, width, n_groups):
    """The removal metrics' ``groups=n`` and a grid of feature groups are one grid: square patches of
    side round(sqrt(HW / n)), labelled row-major."""
    from rxlit.metrics.perturbations import resolve_groups

    x = torch.rand(2, 3, height, width)
    side = max(1, round((height * width / n_groups) ** 0.5))
    lime = feature_groups(x, "grid", feature_options={"side": side})
    metric = resolve_groups(n_groups, x)
    assert torch.equal(metric.flatten(1), lime.index.view(2, 3, -1)[:, 0])
    assert torch.equal(resolve_groups("pixels", x)[0].flatten(), torch.arange(height * width))
