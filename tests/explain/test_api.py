"""The explain() entry point, the registry and the Captum adapter."""

import pytest
import torch
from explain_nets import tiny_cnn
from torch import nn

from rxlit.explain import captum_method, explain, list_methods, method_options

ALL = ["clime", "grad", "grad_x_input", "guided_backprop", "integrated_gradients", "kernel_shap", "lime",
       "noisy_baseline", "occlusion", "smoothed", "smoothgrad", "square", "unigrad"]


def test_registry_lists_every_method_with_defaults():
    methods = list_methods()
    assert sorted(methods) == ALL
    assert methods["smoothgrad"] == {"options": {"sigma": 0.03, "n_samples": None}, "stochastic": True, "units": "slope",
                                     "needs": None}
    assert methods["integrated_gradients"]["options"]["steps"] == 10
    assert methods["integrated_gradients"]["units"] == "attribution" and not methods["integrated_gradients"]["stochastic"]
    assert methods["lime"]["options"]["ridge_alpha"] == 1.0 and methods["lime"]["options"]["n_samples"] == 100
    assert method_options("kernel_shap")["n_samples"] == 100
    assert "ReLU" in methods["guided_backprop"]["needs"]


def test_unknown_method_lists_valid_names(cnn, images):
    with pytest.raises(ValueError, match="valid names: clime, grad, grad_x_input"):
        explain(cnn, images, method="smoothgard")


def test_unknown_option_lists_valid_options(cnn, images):
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['sigmaa'\].*valid options: .*'n_samples'.*'sigma'"):
        explain(cnn, images, method="smoothgrad", sigmaa=0.1)
    with pytest.raises(ValueError, match="unknown option"):
        explain(cnn, images, method="smoothed", base="lime", base_options={"n_sample": 3})


@pytest.mark.parametrize("method", ALL)
def test_shape_mode_and_no_grad_caller(method, images):
    model = tiny_cnn()
    model.train()
    model[1].eval()  # a mixed state must come back exactly as it was
    options = {"n_samples": 2} if method in ("smoothgrad", "unigrad", "smoothed") else {}
    if method in ("lime", "kernel_shap", "clime", "noisy_baseline"):
        options = {"n_samples": 8}
    with torch.no_grad():
        out = explain(model, images, target=1, method=method, generator=torch.Generator().manual_seed(0), **options)
    assert out.shape == images.shape and out.dtype == images.dtype and torch.isfinite(out).all()
    assert model.training and not model[1].training and model[0].training


def test_target_none_is_the_predicted_class(cnn, images):
    predicted = cnn(images).argmax(1)
    assert torch.equal(explain(cnn, images), explain(cnn, images, target=predicted))


def test_prob_output_is_softmax_gradient(cnn, images):
    x = images.clone().requires_grad_(True)
    p = cnn(x).softmax(1)[:, 2].sum()
    (expected,) = torch.autograd.grad(p, x)
    assert torch.allclose(explain(cnn, images, 2, output="prob"), expected)


def test_callable_method_and_captum_adapter(cnn, images):
    from captum.attr import Saliency

    def double_grad(model, x, target):
        return 2 * explain(model, x, target)

    assert torch.allclose(explain(cnn, images, 0, method=double_grad), 2 * explain(cnn, images, 0))
    saliency = captum_method(Saliency, abs=False)
    assert torch.allclose(explain(cnn, images, 0, method=saliency), explain(cnn, images, 0))
    prob = captum_method(Saliency, output="prob", abs=False)
    assert torch.allclose(explain(cnn, images, 0, method=prob), explain(cnn, images, 0, output="prob"))


def test_guided_backprop_refuses_smooth_activations(images):
    with pytest.raises(ValueError, match="GELU activation at '1'"):
        explain(tiny_cnn(act=nn.GELU), images, method="guided_backprop")

    class Functional(nn.Module):
        def forward(self, x):
            return nn.functional.silu(x.flatten(1)[:, :3])

    with pytest.raises(ValueError, match="calls silu"):
        explain(Functional(), images, 0, method="guided_backprop")


def test_integrated_gradients_rules_and_refusals(cnn, images):
    from rxlit.explain.gradients import quadrature

    assert method_options("integrated_gradients") == {"baseline": 0.0, "steps": 10, "rule": "riemann_trapezoid"}
    points, weights = quadrature("riemann_trapezoid", 5)
    assert points == [0.0, 0.25, 0.5, 0.75, 1.0] and weights == [0.125, 0.25, 0.25, 0.25, 0.125]
    for rule in ("riemann_left", "riemann_right", "riemann_middle", "gausslegendre"):
        assert abs(sum(quadrature(rule, 7)[1]) - 1) < 1e-12, rule
    with pytest.raises(ValueError, match="valid rules: riemann_left, .*gausslegendre"):
        explain(cnn, images, 0, "integrated_gradients", rule="simpson")
    with pytest.raises(ValueError, match="riemann_trapezoid needs steps >= 2"):
        explain(cnn, images, 0, "integrated_gradients", steps=1)


def test_non_finite_inputs_are_refused_but_huge_finite_ones_are_not():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    for bad in (float("nan"), float("inf")):
        x = torch.zeros(2, 4)
        x[1, 2] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            explain(model, x, 0)
    huge = torch.full((2, 4), 3e38)  # finite entries whose sum overflows float32
    assert torch.allclose(explain(model, huge, 0), model[1].weight[0].detach().expand(2, 4))


def test_chunk_rows_budget_depends_on_the_device():
    from rxlit.explain import chunk_rows

    row = 3 * 32 * 32 * 4 * 64  # float32 input times the activation factor
    assert chunk_rows(torch.zeros(2, 3, 32, 32)) == 64 * 2**20 // row == 85
    assert chunk_rows(torch.zeros(2, 3, 32, 32, device="meta")) == 256 * 2**20 // row
    assert chunk_rows(torch.zeros(2, 3, 32, 32), budget_bytes=row * 7) == 7
