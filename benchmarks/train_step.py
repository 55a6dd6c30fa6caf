"""Cost of one training step per regime, as ratios to a standard step measured in the same process.

Targets (issue 2): PGD-k step / standard step <= 1.15 * (k + 1); gradnorm step / standard <= 3.

    python benchmarks/train_step.py [--model small_cnn] [--image-size 28] [--batch 128] [--steps 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from rxlit.training.module import RxLitModule
from rxlit.training.optim import build_optimizer

warnings.filterwarnings("ignore")


def make_module(args, adv: dict, reg: dict) -> RxLitModule:
    info = {"name": "bench", "num_classes": 10, "in_chans": args.chans, "image_size": args.image_size,
            "mean": [0.5] * args.chans, "std": [0.25] * args.chans}
    torch.manual_seed(0)
    return RxLitModule(model={"name": args.model}, data_info=info, adv=adv, reg=reg,
                       optim={"name": "sgd", "lr": 0.01}, sched={"name": "none"}, eval_attack={})


class Stepper:
    """One regime's module and optimiser; ``step()`` times forward + objective + backward + update."""

    def __init__(self, module: RxLitModule, batch):
        self.module, self.batch = module.train(), batch
        self.optimizer = build_optimizer(module.parameters(), "sgd", lr=0.01)

    def step(self) -> float:
        start = time.perf_counter()
        loss = self.module.training_step(self.batch, 0)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return time.perf_counter() - start


def interleaved_ratios(steppers: dict[str, Stepper], rounds: int) -> dict[str, tuple[float, float]]:
    """Median seconds and median ratio to the first regime, timing every regime once per round so
    that load from other processes hits all regimes alike."""
    for stepper in steppers.values():  # warm-up
        stepper.step()
    times = {name: [] for name in steppers}
    for _ in range(rounds):
        for name, stepper in steppers.items():
            times[name].append(stepper.step())
    reference = times[next(iter(steppers))]
    return {name: (statistics.median(t), statistics.median(a / b for a, b in zip(t, reference)))
            for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--chans", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=7, help="PGD steps k")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    batch = (torch.rand(args.batch, args.chans, args.image_size, args.image_size, generator=g),
             torch.randint(0, 10, (args.batch,), generator=g))
    k = args.steps
    attack = {"eps": 8 / 255, "step": 2 / 255, "steps": k}
    regimes = {
        "standard": ({"name": "none"}, {"name": "none"}, None),
        f"pgd-{k}": ({"name": "pgd", **attack}, {"name": "none"}, 1.15 * (k + 1)),
        "gradnorm": ({"name": "none"}, {"name": "gradnorm", "weight": 0.1}, 3.0),
        "curvature": ({"name": "none"}, {"name": "curvature", "weight": 0.1, "h": 0.01}, None),
        "spectral": ({"name": "none"}, {"name": "spectral"}, None),
        f"trades-{k}": ({"name": "trades", **attack}, {"name": "none"}, None),
    }
    print(f"model={args.model} input={args.chans}x{args.image_size}x{args.image_size} batch={args.batch} "
          f"threads={args.threads} rounds={args.repeats} device=cpu")
    steppers = {name: Stepper(make_module(args, adv, reg), batch) for name, (adv, reg, _) in regimes.items()}
    results = interleaved_ratios(steppers, args.repeats)
    print(f"{'regime':<12} {'ms/step':>9} {'x standard':>11} {'target':>8}  ok")
    for name, (seconds, ratio) in results.items():
        target = regimes[name][2]
        verdict = "" if target is None else ("yes" if ratio <= target else "NO")
        print(f"{name:<12} {seconds * 1e3:9.1f} {ratio:11.2f} {'' if target is None else f'<= {target:.2f}':>8}  {verdict}")

if __name__ == "__main__":
    main()
