"""Every method on every registered backbone (tiny inputs, few samples), or a clear refusal."""

import pytest
import torch

models = pytest.importorskip("rxlit.models")

from rxlit.explain import explain, list_methods  # noqa: E402

FEW = {"smoothgrad": {"n_samples": 2}, "unigrad": {"n_samples": 2}, "smoothed": {"n_samples": 2, "base": "grad"},
       "integrated_gradients": {"steps": 2}, "lime": {"n_samples": 4, "n_features": 4},
       "kernel_shap": {"n_samples": 4, "n_features": 4}, "clime": {"n_samples": 4},
       "noisy_baseline": {"n_samples": 4}, "square": {"max_side": 1}, "occlusion": {"patch": 4, "stride": 4}}
NOT_RELU = {"vit_tiny", "swin_tiny"}


@pytest.mark.parametrize("name", sorted(models.BACKBONES.names()))
def test_every_method_runs_on_backbone(name):
    torch.manual_seed(0)
    model = models.build_model(name, num_classes=3, in_chans=3, image_size=8).eval()
    x = torch.rand(1, 3, 8, 8)
    for method in list_methods():
        if method == "guided_backprop" and (name in NOT_RELU or models.activation_kinds(model) - {"ReLU"}):
            with pytest.raises(ValueError, match="ReLU networks only"):
                explain(model, x, 0, method)
            continue
        out = explain(model, x, 0, method, generator=torch.Generator().manual_seed(0), **FEW.get(method, {}))
        assert out.shape == x.shape and torch.isfinite(out).all(), (name, method)
