"""Measure what an ``explain`` config costs: ``python -m rxlit.callbacks.cost [train overrides]``.

Runs ``train(cfg)`` with the evaluation after *every* epoch, so each round is one training epoch
(with its validation) followed by one evaluation in the same process: the ratio of the two is
measured interleaved and is robust to other load on the machine. Prints each round's ratio, the
median, and the projected cost fraction of the configured schedule
(``ratio * evaluations / epochs``, with ``every_n_epochs`` and the final evaluation).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def n_evaluations(max_epochs: int, every_n: int) -> int:
    """Evaluations in a run: every ``every_n`` epochs, plus the last epoch when not on the grid."""
    return max_epochs // every_n + (max_epochs % every_n != 0)


def measure(overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from rxlit.training.run import train

    with tempfile.TemporaryDirectory() as tmp:
        base = ["logger=none", "callbacks.progress_bar=tqdm", "explain.progress=false",
                f"paths.output_dir={tmp}/out", f"paths.checkpoints={tmp}/ckpt"]
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = compose("train", [*base, *overrides])
            every_n = int(cfg.explain.every_n_epochs)
            cfg = compose("train", [*base, *overrides, "explain.every_n_epochs=1"])
        if not cfg.explain.get("enabled", False):
            raise SystemExit("this measures an explain config: pass explain=default (or another one)")
        train(cfg)
        rounds = [json.loads(p.read_text()) for p in sorted(Path(tmp, "out", "xai").glob("*_epoch*.json"))]
        max_epochs = int(OmegaConf.select(cfg, "trainer.max_epochs"))
    ratios = [r["time_s"] / r["epoch_time_s"] for r in rounds]
    median = statistics.median(ratios)
    return {"rounds": [{"epoch": r["epoch"], "eval_s": r["time_s"], "epoch_s": r["epoch_time_s"], "ratio": q}
                       for r, q in zip(rounds, ratios, strict=True)],
            "median_ratio": median, "every_n_epochs": every_n, "max_epochs": max_epochs,
            "cost_fraction": median * n_evaluations(max_epochs, every_n) / max_epochs}


def main(argv: list[str]) -> None:
    result = measure(argv)
    print("| epoch | evaluation s | training epoch s | ratio |")
    print("|---|---|---|---|")
    for r in result["rounds"]:
        print(f"| {r['epoch']} | {r['eval_s']:.2f} | {r['epoch_s']:.2f} | {r['ratio']:.3f} |")
    print(f"\nmedian evaluation / epoch ratio: {result['median_ratio']:.3f}")
    print(f"cost fraction with every_n_epochs={result['every_n_epochs']} over {result['max_epochs']} epochs: "
          f"{result['cost_fraction']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
