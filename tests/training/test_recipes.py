"""Per-backbone training recipes: defaults that train every backbone without divergence."""

from __future__ import annotations

import json

import pytest
from rxlit_configs import compose

from rxlit.app.train import train
from rxlit.models import BACKBONES


def test_recipe_sets_defaults_and_the_command_line_wins():
    vit = compose("train", ["model=vit_tiny"])
    assert (vit.optim.name, vit.optim.lr, vit.optim.weight_decay, vit.sched.warmup_epochs) == ("adamw", 3e-4, 0.05, 2)
    mine = compose("train", ["model=vit_tiny", "optim.lr=1e-4", "sched.warmup_epochs=0"])
    assert (mine.optim.name, mine.optim.lr, mine.sched.warmup_epochs) == ("adamw", 1e-4, 0)
    plain = compose("train", ["model=small_cnn"])  # no recipe: the global defaults
    assert (plain.optim.name, plain.optim.lr, plain.sched.warmup_epochs) == ("sgd", 0.05, 0)


# The wide ResNets (36M and 46M parameters) take about 1.5 s per step of 128 digits on 2 cores, so
# they train here on batches of 32: smaller batches are noisier, so the check is not made easier.
WIDE = {"wrn28_10", "wrn34_10"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BACKBONES.names()))
def test_every_backbone_trains_two_epochs_with_its_recipe(name, make_cfg, tmp_path):
    # 2 epochs x 6 steps: resnet50 at the old default (SGD 0.05, no warm-up) diverged at step 6. The
    # explanation evaluation is off here only for time (vit/swin/WRN evaluations take minutes on 2
    # cores); it is exercised with its defaults in tests/evaluation.
    batch = ["data.batch_size=32"] if name in WIDE else []
    report = train(make_cfg([f"model={name}", "trainer.max_epochs=2", "trainer.limit_train_batches=6",
                             "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", *batch]))
    assert report["status"] == "finished"
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["status"] == "finished" and saved["epochs"] == 2
    assert saved["fit"]["train/loss"] < 4 * 2.303  # under the divergence limit (10 classes)
