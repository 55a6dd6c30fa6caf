"""The builder, the registry and the Hydra files configs/data/<name>.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rxlit.data import DATASETS, build_datamodule, datamodule_from_config, valid_keys

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "data"
ATTACK_KEYS = {"eps", "step", "steps", "eps_l2", "step_l2"}
NEEDS_FILES = {"imagefolder"}  # reads class folders at construction


def load(name: str):
    """configs/data/<name>.yaml placed under `data`, as Hydra composes it, with a run seed of 7."""
    return OmegaConf.create({"seed": 7, "data": OmegaConf.load(CONFIG_DIR / f"{name}.yaml")})


def test_one_config_per_registered_dataset():
    assert sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) == DATASETS.names()
    assert "digits" in DATASETS and len(DATASETS) == 8


@pytest.mark.parametrize("name", DATASETS.names())
def test_config_mirrors_constructor_defaults(name, monkeypatch):
    monkeypatch.setenv("RXLIT_DATA", "/datasets")
    cfg = load(name)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    cls = DATASETS.get(name)
    assert data.pop("name") == name
    attack = data.pop("attack")
    assert set(attack) == ATTACK_KEYS and attack == pytest.approx(cls.default_attack)
    assert 0 < attack["step"] <= attack["eps"] and attack["steps"] >= 1
    assert sorted(data) == sorted(valid_keys(name))
    assert data.pop("root") == f"/datasets/{name}" and data.pop("seed") == 7
    defaults = DATASETS.options(name)
    defaults["augment"] = cls.default_augment
    for key, value in data.items():
        assert value == defaults[key], key


@pytest.mark.parametrize("name", sorted(set(DATASETS.names()) - NEEDS_FILES))
def test_attributes_known_before_setup(name):
    dm = build_datamodule(name, root="/nonexistent")
    assert dm.num_classes >= 2 and dm.in_chans in (1, 3) and dm.image_size >= 1
    assert len(dm.mean) == len(dm.std) == dm.in_chans and all(s > 0 for s in dm.std)
    assert dm.class_names is None or len(dm.class_names) == dm.num_classes
    assert dm.attack == DATASETS.get(name).default_attack


@pytest.mark.parametrize("name", sorted(set(DATASETS.names()) - NEEDS_FILES))
def test_hparams_record_every_option(name):
    """A checkpoint records each config key with its value: those passed and the defaults."""
    defaults = DATASETS.options(name)
    assert list(defaults) == valid_keys(name) and "batch_size" in defaults and "root" in defaults
    assert {k: v for k, v in build_datamodule(name).hparams.items() if k in defaults} == defaults
    hparams = build_datamodule(name, root="/elsewhere", batch_size=7, limit_val=3).hparams
    assert set(defaults) <= set(hparams)
    assert (hparams["root"], hparams["batch_size"], hparams["limit_val"]) == ("/elsewhere", 7, 3)
    assert hparams["seed"] == defaults["seed"] == 0


def test_own_defaults_differ_from_the_base_where_the_data_set_says():
    assert DATASETS.options("digits")["val_fraction"] == 0.15  # 70/15/15
    assert DATASETS.options("cifar10")["val_fraction"] == 0.1
    assert "val_fraction" not in valid_keys("synthetic")  # generated splits: nothing to carve
    with pytest.raises(TypeError, match="val_fraction.*valid keys: .*n_val"):
        build_datamodule("synthetic", val_fraction=0.2)


def test_build_from_config_keeps_attack_out_of_kwargs():
    cfg = load("synthetic")
    cfg.data.attack.eps = 0.2
    cfg.data.n_train = 16
    dm = datamodule_from_config(cfg.data)
    assert dm.attack["eps"] == 0.2 and dm.seed == 7 and len(dm.split("train")) == 16
    assert "attack" not in dm.hparams and "name" not in dm.hparams
    assert build_datamodule(**OmegaConf.to_container(load("digits").data, resolve=True)).num_classes == 10


def test_hydra_composes_the_group():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR.parent), version_base="1.3"):
        cfg = compose(overrides=["+data=cifar10", "data.batch_size=32"])
    assert cfg.data.name == "cifar10" and cfg.data.attack.eps == pytest.approx(8 / 255)
    assert datamodule_from_config(cfg.data).batch_size == 32


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: cifar10, cifar100, digits"):
        build_datamodule("cifar11")


def test_unknown_key_lists_valid_keys():
    with pytest.raises(TypeError, match="batchsize.*valid keys: .*batch_size"):
        build_datamodule("digits", batchsize=3)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"batch_size": 0}, "data.batch_size"),
        ({"batch_size": -4}, "data.batch_size"),
        ({"eval_batch_size": 0}, "data.eval_batch_size"),
        ({"val_fraction": 1.5}, "data.val_fraction"),
        ({"val_fraction": 0.0}, "data.val_fraction"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "data.val_fraction \\+ data.test_fraction"),
        ({"num_workers": -1}, "data.num_workers"),
        ({"limit_train": 0}, "data.limit_train"),
        ({"seed": "zero"}, "data.seed"),
    ],
)
def test_bad_values_name_the_config_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        build_datamodule("digits", **kwargs)


def test_bad_values_of_other_data_sets(tmp_path):
    with pytest.raises(ValueError, match="data.val_fraction"):
        build_datamodule("cifar10", val_fraction=1.0)
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="data.image_size"):
        build_datamodule("imagefolder", root=str(tmp_path), image_size=0)
    with pytest.raises(ValueError, match="data.in_chans"):
        build_datamodule("imagefolder", root=str(tmp_path), in_chans=2)
