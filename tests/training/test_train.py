"""End-to-end training runs on the embedded digits data (tiny settings)."""

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from rxlit.app.train import train
from rxlit.training.checkpoint import CheckpointError, load_model, read_checkpoint

ADVS = ["none", "pgd", "pgd_l2", "fgsm_rs", "trades"]
REGS = ["none", "gradnorm", "spectral", "curvature"]


@pytest.mark.parametrize("adv", ADVS)
@pytest.mark.parametrize("reg", REGS)
def test_every_adv_reg_combination_trains(make_cfg, tmp_path, adv, reg):
    """Two whole digits epochs (20 steps at the default learning rate): the former TRADES + curvature
    pairing, which mixed two losses, went non-finite at step 3."""
    steps = "adv.steps=2" if adv in ("pgd", "pgd_l2", "trades") else "seed=0"
    report = train(make_cfg([f"adv={adv}", f"reg={reg}", steps, "trainer.max_epochs=2", "data.batch_size=128",
                             "trainer.limit_train_batches=null"]))
    assert report["status"] == "finished" and report["global_step"] == 20
    keys = ["train/loss", "train/acc", "val/loss", "val/acc", "val/adv_acc"]
    keys += ["train/adv_acc"] if adv != "none" else []
    keys += ["train/penalty"] if reg in ("gradnorm", "curvature") else []
    for key in keys:
        assert math.isfinite(report["fit"][key]), key
    for key in ("test/loss", "test/acc", "test/adv_acc"):
        assert math.isfinite(report["test"][key]), key
    assert 0 <= report["fit"]["val/adv_acc"] <= report["fit"]["val/acc"] + 0.25
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["fit"]["val/acc"] == pytest.approx(report["fit"]["val/acc"])
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["adv"]["name"] == adv and config["reg"]["name"] == reg
    ckpt_dir = tmp_path / "ckpt" / f"digits-small_cnn-{adv}-{reg}-s0"
    assert (ckpt_dir / "best.ckpt").exists() and (ckpt_dir / "last.ckpt").exists()


def test_same_seed_same_metrics(make_cfg, tmp_path):
    first = train(make_cfg(["seed=3", "paths.checkpoints=" + str(tmp_path / "a")]))
    second = train(make_cfg(["seed=3", "paths.checkpoints=" + str(tmp_path / "b")]))
    assert first["fit"] == second["fit"] and first["test"] == second["test"]
    third = train(make_cfg(["seed=4", "paths.checkpoints=" + str(tmp_path / "c")]))
    assert third["fit"]["train/loss"] != first["fit"]["train/loss"]


def test_checkpoint_loads_weights_only_and_matches(make_cfg, tmp_path):
    report = train(make_cfg(["reg=spectral"]))
    model, hparams = load_model(report["best_checkpoint"])
    assert hparams["data_info"]["image_size"] == 8 and hparams["reg"]["name"] == "spectral"
    from rxlit.data import build_datamodule

    dm = build_datamodule("digits", seed=0, batch_size=32)
    dm.setup("test")
    batches = list(zip(range(2), dm.test_dataloader()))  # the two batches trainer.test scored
    with torch.no_grad():
        acc = torch.cat([model(x).argmax(1) == y for _, (x, y) in batches]).float().mean()
    # the reloaded network (spectral parametrisation and its power-iteration state included) is the tested one
    assert float(acc) == pytest.approx(report["test"]["test/acc"], abs=1e-6)
    assert not model.training


def test_spectral_checkpoint_from_before_conv_norm_loads(make_cfg, tmp_path):
    """Checkpoints written before reg.conv_norm existed normalised conv kernels reshaped: they load so."""
    report = train(make_cfg(["reg=spectral", "reg.conv_norm=reshaped"]))
    ckpt = read_checkpoint(report["best_checkpoint"])
    del ckpt["hyper_parameters"]["reg"]["conv_norm"]
    torch.save(ckpt, tmp_path / "old.ckpt")
    old, _ = load_model(tmp_path / "old.ckpt")
    new, _ = load_model(report["best_checkpoint"])
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(old(x), new(x))


def test_new_run_never_overwrites_finished_checkpoints(make_cfg, tmp_path):
    first = train(make_cfg([]))
    second = train(make_cfg([]))
    assert first["checkpoint_dir"] != second["checkpoint_dir"]
    assert second["checkpoint_dir"].endswith("-2")


def test_resume_continues_epochs_and_optimizer_state(make_cfg, tmp_path, monkeypatch):
    first = train(make_cfg(["trainer.max_epochs=2"]))
    last = first["last_checkpoint"]
    saved = read_checkpoint(last)
    assert saved["epoch"] == 1
    seen = {}

    from rxlit.training import module as module_lib

    original = module_lib.RxLitModule.on_train_epoch_start

    def capture(self):
        if not seen:
            seen["epoch"] = self.current_epoch
            seen["state"] = copy.deepcopy(self.optimizers().optimizer.state_dict())
        return original(self)

    monkeypatch.setattr(module_lib.RxLitModule, "on_train_epoch_start", capture)
    resumed = train(make_cfg(["trainer.max_epochs=3", f"ckpt_path={last}"]))
    assert seen["epoch"] == 2
    expected = saved["optimizer_states"][0]["state"]
    assert set(seen["state"]["state"]) == set(expected)
    for key, buffers in expected.items():
        torch.testing.assert_close(seen["state"]["state"][key]["momentum_buffer"], buffers["momentum_buffer"])
    assert resumed["epochs"] == 3 and resumed["global_step"] == 6
    assert resumed["checkpoint_dir"] == first["checkpoint_dir"]


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(make_cfg, tmp_path, monkeypatch):
    from rxlit.training import objectives

    original = objectives.Objective.training_loss
    calls = {"n": 0}

    def poisoned(self, model, x, y):
        calls["n"] += 1
        trained = original(self, model, x, y)
        if calls["n"] <= 2:
            return trained
        return trained._replace(at=lambda z: trained.at(z)._replace(loss=trained.at(z).loss * float("nan")))

    monkeypatch.setattr(objectives.Objective, "training_loss", poisoned)
    from rxlit.training.module import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match="NaN/inf at epoch 1.*last.ckpt"):
        train(make_cfg(["trainer.max_epochs=3"]))
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["status"] == "failed" and "NonFiniteLossError" in report["error"]
    ckpt = read_checkpoint(report["last_checkpoint"])
    assert ckpt["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_corrupt_checkpoint_gets_a_clear_error(make_cfg, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        train(make_cfg([f"ckpt_path={tmp_path / 'missing.ckpt'}"]))
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not written by rxlit"):
        load_model(tmp_path / "other.ckpt")


def test_bad_config_values_are_refused_before_training(make_cfg):
    with pytest.raises(ValueError, match="adv.eps must be >= 0"):
        train(make_cfg(["adv=pgd", "adv.eps=-0.1"]))
    with pytest.raises(ValueError, match="adv.steps must be >= 1"):
        train(make_cfg(["adv=pgd", "adv.steps=0"]))
    with pytest.raises(ValueError, match="optim.lr"):
        train(make_cfg(["optim.lr=0"]))


def test_unknown_group_option_lists_valid_ones(make_cfg):
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="pgd_l2"):
        make_cfg(["adv=pgdd"])
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="optim.learning_rate"):
        make_cfg(["optim.learning_rate=0.1"])


@pytest.mark.slow
def test_pgd_training_gives_clearly_higher_pgd_accuracy(make_cfg, tmp_path):
    """Same seed and budget (6 epochs on digits): PGD training raises PGD accuracy at eps = 0.1.
    Measured: standard 0.60, PGD 0.74 (val, 256 fixed examples, 10-step PGD)."""
    common = ["trainer.max_epochs=6", "callbacks.progress_bar=none"]
    standard = train(make_cfg(["adv=none", *common], tiny=False))
    robust = train(make_cfg(["adv=pgd", *common], tiny=False))
    assert robust["fit"]["val/acc"] > 0.9 and standard["fit"]["val/acc"] > 0.9
    assert robust["fit"]["val/adv_acc"] > standard["fit"]["val/adv_acc"] + 0.08
    assert robust["test"]["test/adv_acc"] > standard["test"]["test/adv_acc"] + 0.08
    check_default_evaluation_against_autoattack(robust["best_checkpoint"])


def check_default_evaluation_against_autoattack(checkpoint: str, n: int = 128) -> None:
    """The default evaluation attack (PGD-10, step 2.5 eps / 10) is within a few points of AutoAttack's
    gradient attacks (APGD-CE, then APGD-T on the survivors, standard settings) on the same test
    examples, so it does not overstate robustness. AutoAttack's FAB-T and Square stages are left out
    here for time (Square alone takes minutes on a CPU); the full standard AutoAttack, measured
    once on 256 test examples of a 10-epoch model, gave 0.793 where the default gave 0.809."""
    import torchattacks
    from torchattacks.wrappers.multiattack import MultiAttack

    from rxlit.data import build_datamodule
    from rxlit.metrics.attacks import pgd

    model, hparams = load_model(checkpoint)
    spec = hparams["eval_attack"]
    x, y, _ = build_datamodule("digits", seed=0).eval_subset(n, split="test")
    torch.manual_seed(0)
    default = pgd(model, x, y, spec["eps"], spec["step"], spec["steps"], spec["norm"])
    gradient_aa = MultiAttack([
        torchattacks.APGD(model, eps=spec["eps"], norm="Linf", loss="ce", n_restarts=1, seed=0),
        torchattacks.APGDT(model, eps=spec["eps"], norm="Linf", n_classes=10, n_restarts=1, seed=0)])(x, y)
    with torch.no_grad():
        pgd_acc, aa_acc = [float((model(a).argmax(1) == y).float().mean()) for a in (default, gradient_aa)]
    assert aa_acc <= pgd_acc + 1 / n and pgd_acc - aa_acc <= 0.05, (pgd_acc, aa_acc)


def test_train_acc_is_clean_accuracy_beside_adversarial(make_cfg):
    """train/acc is accuracy on the clean batch; train/adv_acc on the inputs the loss attacks."""
    from rxlit.app.train import make_module
    from rxlit.data import build_datamodule

    cfg = OmegaConf.to_container(make_cfg(["adv=trades", "adv.steps=3"]), resolve=True)
    dm = build_datamodule("digits", seed=0)
    module = make_module(cfg, dm).train()
    x, y, _ = dm.eval_subset(64, split="train")
    optimizer = torch.optim.SGD(module.model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(30):  # a model that fits x, so that its clean and adversarial accuracies differ
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(module.model(x), y).backward()
        optimizer.step()
    logged = {}
    module.log_dict = lambda logs, **_: logged.update({k: float(v) for k, v in logs.items()})
    module.log = lambda *a, **k: None
    torch.manual_seed(0)
    module.training_step((x, y), 0)
    torch.manual_seed(0)
    x_adv = module.objective.perturb(module.model, x, y)
    with torch.no_grad():
        clean = (module.model(x).argmax(1) == y).float().mean()
        adv = (module.model(x_adv).argmax(1) == y).float().mean()
    assert logged["train/acc"] == pytest.approx(float(clean)) and logged["train/adv_acc"] == pytest.approx(float(adv))
    assert logged["train/acc"] != logged["train/adv_acc"]  # the two are different numbers here


@pytest.mark.parametrize("adv,expected", [("none", "val/acc"), ("pgd", "val/adv_acc"), ("trades", "val/adv_acc")])
def test_best_checkpoint_follows_robust_accuracy_for_adversarial_training(make_cfg, adv, expected):
    from rxlit.app.train import make_callbacks

    cfg = OmegaConf.to_container(make_cfg([f"adv={adv}"]), resolve=True)
    best = make_callbacks(cfg, Path("unused"))[0]
    assert best.monitor == expected
    cfg["eval_attack"]["n_examples"] = 0  # no robust accuracy logged: clean accuracy
    assert make_callbacks(cfg, Path("unused"))[0].monitor == "val/acc"
    cfg["callbacks"]["checkpoint"]["monitor"] = "val/loss"
    assert make_callbacks(cfg, Path("unused"))[0].monitor == "val/loss"


def test_divergence_from_the_penalty_names_reg_weight(make_cfg):
    from rxlit.training.divergence import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match=r"reg=gradnorm penalty is .* lower reg.weight \(now 1e\+06\)"):
        train(make_cfg(["reg=gradnorm", "reg.weight=1e6", "trainer.limit_train_batches=8"]))
