"""Config helpers shared by the test folders (a uniquely named module: several conftest.py files exist)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

# A training run small enough for a unit test: configs/debug/tiny.yaml (1 epoch of 2 batches of digits,
# a tiny evaluation attack), no logger, no explanation evaluation.
TINY = [
    "debug=tiny",
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
