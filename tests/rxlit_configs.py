"""Config helpers shared by the test folders (a uniquely named module: several conftest.py files exist)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

# A training run small enough for a unit test: 2 batches of digits, tiny evaluation attack.
TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "eval_attack.n_examples=16",
    "eval_attack.steps=2",
    "data.batch_size=32",
    "logger=none",
    "callbacks.progress_bar=tqdm",
    "callbacks.lr_monitor=false",
    "explain=none",
]


def compose(config_name: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides)
