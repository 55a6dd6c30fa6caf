"""Measure what an ``explain`` config costs: ``python -m rxlit.app.cost [train overrides]``.

Runs ``train(cfg)`` with the evaluation after *every* epoch, so each round is one training epoch
(with its validation) followed by one evaluation in the same process: the ratio of the two is
measured interleaved, in wall time and in this process's CPU time (steadier when other jobs share
the machine). Prints each round's ratios, their medians, and the projected cost fraction of the configured schedule
(``ratio * evaluations / epochs``, with ``every_n_epochs`` and the final evaluation).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path


def n_evaluations(max_epochs: int, every_n: int) -> int:
    """Evaluations in a run: every ``every_n`` epochs, plus the last epoch when not on the grid."""
    return max_epochs // every_n + (max_epochs % every_n != 0)


def measure(overrides: list[str]) -> dict:
    from omegaconf import OmegaConf

    from rxlit.app.configs import compose
    from rxlit.app.train import train

    with tempfile.TemporaryDirectory() as tmp:
        base = ["logger=none", "callbacks.progress_bar=tqdm", "explain.progress=false",
                f"paths.output_dir={tmp}/out", f"paths.checkpoints={tmp}/ckpt"]
        every_n = int(compose([*base, *overrides]).explain.every_n_epochs)
        cfg = compose([*base, *overrides, "explain.every_n_epochs=1"])
        if not cfg.explain.get("enabled", False):
            raise SystemExit("this measures an explain config: pass explain=default (or another one)")
        train(cfg)
        rounds = [json.loads(p.read_text()) for p in sorted(Path(tmp, "out", "xai").glob("*_epoch*.json"))]
        max_epochs = int(OmegaConf.select(cfg, "trainer.max_epochs"))
    share = n_evaluations(max_epochs, every_n) / max_epochs
    wall = [r["time_s"] / r["epoch_time_s"] for r in rounds]
    cpu = [r["cpu_time_s"] / r["epoch_cpu_time_s"] for r in rounds]
    rows = [{"epoch": r["epoch"], "eval_s": r["time_s"], "epoch_s": r["epoch_time_s"], "ratio": w,
             "eval_cpu_s": r["cpu_time_s"], "epoch_cpu_s": r["epoch_cpu_time_s"], "cpu_ratio": c}
            for r, w, c in zip(rounds, wall, cpu, strict=True)]
    return {"rounds": rows, "median_ratio": statistics.median(wall), "median_cpu_ratio": statistics.median(cpu),
            "every_n_epochs": every_n, "max_epochs": max_epochs,
            "cost_fraction": statistics.median(wall) * share, "cpu_cost_fraction": statistics.median(cpu) * share}


def main(argv: list[str]) -> None:
    result = measure(argv)
    print("| epoch | evaluation s | training epoch s | ratio | evaluation CPU s | epoch CPU s | CPU ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in result["rounds"]:
        print(f"| {r['epoch']} | {r['eval_s']:.2f} | {r['epoch_s']:.2f} | {r['ratio']:.3f} | "
              f"{r['eval_cpu_s']:.2f} | {r['epoch_cpu_s']:.2f} | {r['cpu_ratio']:.3f} |")
    print(f"\nmedian evaluation / epoch ratio: wall {result['median_ratio']:.3f}, CPU {result['median_cpu_ratio']:.3f}")
    print(f"cost fraction with every_n_epochs={result['every_n_epochs']} over {result['max_epochs']} epochs: "
          f"wall {result['cost_fraction']:.3f}, CPU {result['cpu_cost_fraction']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
