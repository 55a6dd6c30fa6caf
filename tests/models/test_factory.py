"""build_model: errors before building, options, configs, checkpoints, timm by name."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from rxlit.models import BACKBONES, backbone_options, build_model, min_image_size
from rxlit.models.factory import RUN_KEYS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "model"
ALL_BACKBONES = BACKBONES.names()
NUM_CLASSES = 10


def test_unknown_name_lists_valid_names_and_timm_hint():
    with pytest.raises(ValueError) as info:
        build_model("resnet19", 10, 3, 32)
    message = str(info.value)
    for name in ("resnet18", "small_cnn", "vit_tiny", "timm"):
        assert name in message
    assert "model=timm model.arch=" in message


@pytest.mark.parametrize("name, size, minimum", [("small_cnn", 2, 4), ("vgg16", 4, 8), ("swin_tiny", 4, 8)])
def test_too_small_image_names_backbone_and_minimum(name, size, minimum):
    with pytest.raises(ValueError) as info:
        build_model(name, 10, 1, size)
    message = str(info.value)
    assert f"at least {minimum}x{minimum}" in message
    assert repr(name) in message
    assert "image_size" in message


def test_min_size_follows_explicit_patch_size():
    assert min_image_size("vit_tiny") == 4
    assert min_image_size("vit_tiny", patch_size=4) == 16
    with pytest.raises(ValueError, match="at least 16x16"):
        build_model("vit_tiny", 10, 1, 8, patch_size=4)


@pytest.mark.parametrize("name", ALL_BACKBONES)
def test_every_backbone_declares_a_minimum_it_supports(name, cached_model, images):
    minimum = min_image_size(name)
    model = cached_model(name, 1, minimum).eval()
    with torch.no_grad():
        assert model(images(1, minimum)).shape == (2, NUM_CLASSES)


def test_unknown_option_is_refused_with_valid_keys():
    with pytest.raises(ValueError, match=r"unknown option\(s\) depth.*accepts: hidden"):
        build_model("mlp", 10, 1, 8, depth=3)


def test_pretrained_is_refused_with_checkpoint_hint():
    with pytest.raises(ValueError, match="checkpoint_path"):
        build_model("resnet18", 10, 3, 32, pretrained=True)


def test_image_size_pair_and_bad_counts():
    model = build_model("small_cnn", 10, 1, (8, 12))
    assert model.image_size == (8, 12)
    assert model(torch.rand(2, 1, 8, 12)).shape == (2, 10)
    with pytest.raises(ValueError, match="positive"):
        build_model("mlp", 0, 1, 8)


def test_every_backbone_has_a_config_and_the_configs_build():
    files = {p.stem for p in CONFIG_DIR.glob("*.yaml")}
    assert files == set(BACKBONES.names())
    for stem in ("small_cnn", "mlp", "timm"):
        cfg = OmegaConf.load(CONFIG_DIR / f"{stem}.yaml")
        model = build_model(**cfg, num_classes=NUM_CLASSES, in_chans=1, image_size=8, mean=[0.5], std=[0.5])
        assert model.name == stem


@pytest.mark.parametrize("name", ALL_BACKBONES)
def test_config_keys_match_backbone_options(name):
    cfg = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / f"{name}.yaml"))
    assert cfg.pop("name") == name
    assert cfg.pop("pretrained") is False
    assert cfg.pop("checkpoint_path") is None
    for key in ("num_classes", "in_chans", "image_size", "mean", "std"):
        assert key not in cfg
    for key in RUN_KEYS:  # the training recipe and run-name label are not backbone options
        cfg.pop(key, None)
    defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in backbone_options(name).items()}
    assert cfg == defaults


@pytest.mark.parametrize("prefix", ["", "backbone.", "model.backbone."])
def test_checkpoint_path_loads_local_weights(tmp_path, prefix, images):
    source = build_model("small_cnn", 10, 1, 8)
    state = {prefix + k: v for k, v in source.backbone.state_dict().items()}
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": state} if prefix.startswith("model.") else state, path)
    torch.manual_seed(123)
    loaded = build_model("small_cnn", 10, 1, 8, checkpoint_path=str(path))
    x = images(1, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))


def test_checkpoint_path_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_model("mlp", 10, 1, 8, checkpoint_path=str(tmp_path / "nope.pt"))


def test_timm_by_name_at_cifar_size(images):
    model = build_model("timm", 10, 3, 32, arch="resnet10t").eval()
    with torch.no_grad():
        assert model(images(3, 32)).shape == (2, 10)


def test_timm_passes_img_size_to_models_that_take_it(images):
    # timm's tiny test_vit: patch 16 at 160x160 by default, so 32x32 needs img_size passed on.
    model = build_model("timm", 5, 1, 32, arch="test_vit", timm_kwargs={"patch_size": 8})
    assert tuple(model.backbone.patch_embed.img_size) == (32, 32)
    with torch.no_grad():
        assert model.eval()(images(1, 32)).shape == (2, 5)


def test_timm_unknown_arch_suggests_list_models():
    with pytest.raises(ValueError) as info:
        build_model("timm", 10, 3, 32, arch="resnet18x")
    assert "timm.list_models(" in str(info.value)
    assert "resnet18" in str(info.value)


def test_timm_too_small_input_is_a_clear_error():
    with pytest.raises(ValueError, match="test_vit"):
        build_model("timm", 10, 1, 8, arch="test_vit", timm_kwargs={"patch_size": 16})
