"""Throughput of rxlit.explain against Captum and against the pass-count bound.

    python benchmarks/explain.py                   # batch 32 of 3x32x32 images, ~10 minutes on 1 CPU core
    python benchmarks/explain.py --model tiny_cnn  # a cheap model: the explanation logic dominates
    python benchmarks/explain.py --quick           # smoke run, a few seconds (no verdicts)
    python benchmarks/explain.py --device cuda

For every method: examples per second; ``ours/bound``, the ratio to the *bound* (the same number
of forward (+ backward) passes of the same model, batched, on pre-built inputs, with no
explanation logic: what our bookkeeping costs); ``speed-up``, Captum's time over ours at
matched settings, at its fastest (``perturbations_per_eval = n_samples``; the gradient methods
have no slower setting) and at its defaults (``perturbations_per_eval = 1``); ``ceiling``,
Captum-fastest's time over the bound: the largest speed-up any implementation running at the
bound could have. When the model's passes dominate Captum's time the ceiling is near 1 and no
implementation can be much faster than Captum; ``--model tiny_cnn`` shows the other regime.

The bound is chunked with rxlit's default memory budget, as rxlit is. All functions of a method
are timed round-robin, one call of each per round, after a warm-up; ratios are medians of the
per-round ratios, robust to the load changes of a shared machine, and a verdict is ``tie`` when
the target lies inside their interquartile range. Captum's slow defaults run once. One process,
one intra-op thread by default (``--threads``): on a 2-core machine shared with other jobs, two
OpenMP threads stall on each other at every barrier (a small forward-backward went from 0.01 s to
over 1 s), which swamps every ratio in noise.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from rxlit.explain import explain, grid_mask
from rxlit.explain.passes import chunk_rows


class Block(nn.Module):
    """A ResNet basic block: conv-bn-relu-conv-bn plus the identity, then relu."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
        )
        self.out = nn.ReLU()

    def forward(self, x):
        return self.out(self.body(x) + x)


def small_resnet(classes: int = 10) -> nn.Module:
    """A small ResNet-ish CNN for 32x32x3 inputs (about 0.1 M parameters)."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        Block(16),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        Block(32),
        nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes),
    )


def timed(fn: Callable[[], object], sync: Callable[[], None], calls: int = 1) -> float:
    """Seconds per call, averaged over ``calls`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - start) / calls


def measure(fns: dict[str, Callable[[], object]], repeats: int, sync: Callable[[], None],
            once: tuple[str, ...] = (), min_seconds: float = 0.25) -> dict[str, list[float]]:
    """Seconds per call of every function, measured round-robin (one sample of each per round, so
    load changes on a shared machine hit all of them alike), after one warm-up call each. A
    sample averages enough back-to-back calls to last about ``min_seconds`` (fast methods are
    otherwise all noise). Functions in ``once`` (slow Captum defaults) run once, without warm-up."""
    calls = {}
    for name, fn in fns.items():
        if name not in once:
            fn()  # warm-up (allocator, oneDNN primitives, lazy imports)
            calls[name] = max(1, math.ceil(min_seconds / max(timed(fn, sync), 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats):
        for name, fn in fns.items():
            if name not in once:
                times[name].append(timed(fn, sync, calls[name]))
            elif round_ == 0:
                times[name].append(timed(fn, sync))
    return times


def chunked(run: Callable[[torch.Tensor, torch.Tensor], object], rows: torch.Tensor, target: torch.Tensor,
            size: int) -> Callable[[], object]:
    """``run`` over row chunks of ``size``: the bound uses the memory budget rxlit uses."""

    def all_chunks():
        return [run(rows[i:i + size], target[i:i + size]) for i in range(0, rows.shape[0], size)]

    return all_chunks


def forward_bound(model: nn.Module, rows: torch.Tensor) -> Callable[[], object]:
    """``len(rows)`` forward passes, no graph, in chunks of rxlit's default memory budget."""

    def run(xs, _):
        with torch.no_grad():
            return model(xs)

    return chunked(run, rows, torch.zeros(rows.shape[0], dtype=torch.long), chunk_rows(rows))


def gradient_bound(model: nn.Module, rows: torch.Tensor, target: torch.Tensor) -> Callable[[], object]:
    """``len(rows)`` forward and backward passes to the input, in chunks of the same budget."""

    def run(xs, ts):
        xs = xs.detach().requires_grad_(True)
        out = model(xs).gather(1, ts.view(-1, 1)).sum()
        return torch.autograd.grad(out, xs)

    return chunked(run, rows, target, chunk_rows(rows))


@dataclass
class Case:
    name: str
    ours: Callable[[], object]
    bound: Callable[[], object]
    captum: dict[str, Callable[[], object]] = field(default_factory=dict)
    batch: int = 0
    bound_target: float | None = None
    captum_target: float | None = None


def captum_cases(model, x, t, n, mask, steps, smooth_n, sigma, occ):
    """Captum's equivalents at matched settings: {method: {setting: fn}}."""
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import (
        GuidedBackprop,
        InputXGradient,
        IntegratedGradients,
        KernelShap,
        Lime,
        NoiseTunnel,
        Occlusion,
        Saliency,
    )

    def grad_input():
        return x.detach().clone().requires_grad_(True)

    def lime(ppe):
        return lambda: Lime(model, interpretable_model=SkLearnRidge(alpha=1.0)).attribute(
            x, target=t, baselines=0.0, feature_mask=mask, n_samples=n, perturbations_per_eval=ppe)

    def shap(ppe):
        return lambda: KernelShap(model).attribute(
            x, target=t, baselines=0.0, feature_mask=mask, n_samples=n, perturbations_per_eval=ppe)

    windows = ((x.shape[2] - occ[0] + occ[1] - 1) // occ[1] + 1) ** 2
    return {
        "grad": {"fastest": lambda: Saliency(model).attribute(grad_input(), target=t, abs=False)},
        "grad_x_input": {"fastest": lambda: InputXGradient(model).attribute(grad_input(), target=t)},
        "integrated_gradients": {"fastest": lambda: IntegratedGradients(model).attribute(
            x, baselines=0.0, target=t, n_steps=steps, method="riemann_trapezoid")},
        "guided_backprop": {"fastest": lambda: GuidedBackprop(model).attribute(grad_input(), target=t)},
        "smoothgrad": {"fastest": lambda: NoiseTunnel(Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=smooth_n, stdevs=sigma, target=t, abs=False)},
        "occlusion": {
            "fastest": lambda: Occlusion(model).attribute(
                x, sliding_window_shapes=(3, occ[0], occ[0]), strides=(3, occ[1], occ[1]), target=t,
                perturbations_per_eval=windows),
            "default": lambda: Occlusion(model).attribute(
                x, sliding_window_shapes=(3, occ[0], occ[0]), strides=(3, occ[1], occ[1]), target=t),
        },
        "lime": {"fastest": lime(n), "default": lime(1)},
        "kernel_shap": {"fastest": shap(n), "default": shap(1)},
    }


def build_cases(model, x, t, n, steps, smooth_n, sigma, quick: bool) -> list[Case]:
    batch, features = x.shape[0], 64
    mask = grid_mask(x.shape[2], x.shape[3], n_groups=features, device=x.device)
    occ = (8, 4)
    repeat = lambda k: x.repeat_interleave(k, 0)  # noqa: E731
    rows_t = lambda k: t.repeat_interleave(k)  # noqa: E731
    gen = lambda: torch.Generator(device=x.device).manual_seed(0)  # noqa: E731
    ours = lambda method, **o: lambda: explain(model, x, t, method, generator=gen(), **o)  # noqa: E731
    windows = ((x.shape[2] - occ[0] + occ[1] - 1) // occ[1] + 1) ** 2
    captum = captum_cases(model, x, t, n, mask.view(1, 1, *mask.shape), steps, smooth_n, sigma, occ)
    cases = [
        Case("grad", ours("grad"), gradient_bound(model, x, t), bound_target=1.3, captum_target=1.0),
        Case("grad_x_input", ours("grad_x_input"), gradient_bound(model, x, t), bound_target=1.3, captum_target=1.0),
        Case("integrated_gradients", ours("integrated_gradients", steps=steps),
             gradient_bound(model, repeat(steps), rows_t(steps)), bound_target=1.3, captum_target=1.0),
        Case("guided_backprop", ours("guided_backprop"), gradient_bound(model, x, t)),
        Case("smoothgrad", ours("smoothgrad", sigma=sigma, n_samples=smooth_n),
             gradient_bound(model, repeat(smooth_n), rows_t(smooth_n)), bound_target=1.3, captum_target=1.0),
        Case("unigrad", ours("unigrad", r=sigma, n_samples=smooth_n), gradient_bound(model, repeat(smooth_n), rows_t(smooth_n))),
        Case("smoothed(grad)", ours("smoothed", sigma=sigma, n_samples=smooth_n),
             gradient_bound(model, repeat(smooth_n), rows_t(smooth_n))),
        Case("occlusion", ours("occlusion", patch=occ[0], stride=occ[1]), forward_bound(model, repeat(windows + 1))),
        Case("lime", ours("lime", n_samples=n, features=mask), forward_bound(model, repeat(n)),
             bound_target=1.2, captum_target=2.0),
        Case("kernel_shap", ours("kernel_shap", n_samples=n, features=mask), forward_bound(model, repeat(n)),
             bound_target=1.2, captum_target=2.0),
        Case("clime (grid)", ours("clime", n_samples=n, features=mask), forward_bound(model, repeat(n))),
        Case("noisy_baseline", ours("noisy_baseline", n_samples=n), forward_bound(model, repeat(n + 1))),
    ]
    for case in cases:
        case.captum = captum.get(case.name, {})
        case.batch = batch
    if not quick:
        small = x[:4]
        side = 2
        squares = sum((x.shape[2] - s + 1) * (x.shape[3] - s + 1) for s in range(1, side + 1))
        cases.append(Case("square (B=4, side<=2)", lambda: explain(model, small, t[:4], "square", max_side=side),
                          forward_bound(model, small.repeat_interleave(squares + 1, 0)), batch=4))
    return cases


def tiny_cnn(classes: int = 10) -> nn.Module:
    """Two narrow convolutions (about 3 k parameters): model calls are cheap, so the explanation
    logic dominates, as on an accelerator where a small model's batched forward costs little."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes),
    )


MODELS = {"small_resnet": small_resnet, "tiny_cnn": tiny_cnn}


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def verdict(name: str, value: float, target: float, spread: tuple[float, float], higher_is_better: bool) -> str:
    """ok / MISS, or tie when the target lies inside the interquartile band of the per-round ratios."""
    low, high = spread
    met = value >= target if higher_is_better else value <= target
    if met:
        return f"{name}:ok"
    reachable = high >= target if higher_is_better else low <= target
    return f"{name}:{'tie' if reachable else 'MISS'}"


def run_case(case: Case, repeats: int, sync, skip_defaults: bool, min_seconds: float = 0.25) -> dict:
    """Time one method round-robin against its bound and Captum; paired per-round ratios."""
    fns = {"ours": case.ours, "bound": case.bound}
    fns.update({f"captum {k}": v for k, v in case.captum.items() if not (k == "default" and skip_defaults)})
    times = measure(fns, repeats, sync, once=("captum default",), min_seconds=min_seconds)
    ours = times["ours"]
    row = {"method": case.name, "batch": case.batch, "ours_ex_s": case.batch / statistics.median(ours)}
    # Ratios are medians of per-round ratios (the functions of one round share the machine's load).
    row["to_bound"] = quartiles([a / b for a, b in zip(ours, times["bound"])])
    if "captum fastest" in times:
        fastest = times["captum fastest"]
        row["captum_fastest_ex_s"] = case.batch / statistics.median(fastest)
        row["speedup_fastest"] = quartiles([c / a for a, c in zip(ours, fastest)])
        # The most any implementation running at the bound could gain over Captum's fastest.
        row["ceiling"] = quartiles([c / b for b, c in zip(times["bound"], fastest)])[1]
    if "captum default" in times:
        default = times["captum default"][0]  # run once: minutes per call at perturbations_per_eval=1
        row["captum_default_ex_s"] = case.batch / default
        row["speedup_default"] = default / statistics.median(ours)
    verdicts = []
    if case.bound_target:
        q1, q2, q3 = row["to_bound"]
        verdicts.append(verdict(f"bound<={case.bound_target}", q2, case.bound_target, (q1, q3), False))
    if case.captum_target and "speedup_fastest" in row:
        q1, q2, q3 = row["speedup_fastest"]
        text = verdict(f"fastest>={case.captum_target}x", q2, case.captum_target, (q1, q3), True)
        if row["ceiling"] < case.captum_target and not text.endswith("ok"):
            text += f"(ceiling {row['ceiling']:.2f}x)"
        verdicts.append(text)
    if case.captum_target and "speedup_default" in row:
        good = row["speedup_default"] >= case.captum_target
        verdicts.append(f"default>={case.captum_target}x:{'ok' if good else 'MISS'}")
    row["verdicts"] = verdicts
    return row


def format_row(row: dict) -> str:
    cells = [f"{row['method']:24s} {row['ours_ex_s']:9.1f} {row['to_bound'][1]:10.2f}"]
    if "captum_fastest_ex_s" in row:
        cells.append(f"{row['captum_fastest_ex_s']:15.1f} {row['speedup_fastest'][1]:8.2f}x {row['ceiling']:8.2f}x")
    else:
        cells.append(f"{'-':>15s} {'-':>9s} {'-':>9s}")
    if "captum_default_ex_s" in row:
        cells.append(f"{row['captum_default_ex_s']:15.1f} {row['speedup_default']:8.2f}x")
    else:
        cells.append(f"{'-':>15s} {'-':>9s}")
    return " ".join(cells) + "  " + " ".join(row["verdicts"])


HEADER = (f"{'method':24s} {'ours ex/s':>9s} {'ours/bound':>10s} {'captum fast ex/s':>15s} {'speed-up':>9s} "
          f"{'ceiling':>9s} {'captum dflt ex/s':>15s} {'speed-up':>9s}  targets")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds (batch 2, 8 samples, "
                        "1 round, Captum's slow defaults skipped)")
    parser.add_argument("--model", choices=sorted(MODELS), default="small_resnet")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads (1: stable on a shared machine)")
    parser.add_argument("--no-captum-defaults", action="store_true",
                        help="skip Captum's default settings (perturbations_per_eval=1 is slow)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    batch, n, repeats = (2, 8, 1) if args.quick else (32, 100, 7)
    repeats = args.repeats or repeats
    model = MODELS[args.model]().to(device).eval()
    x = torch.rand(batch, 3, 32, 32, device=device)
    with torch.no_grad():
        t = model(x).argmax(1)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    params = sum(p.numel() for p in model.parameters())
    print(f"device={device} threads={torch.get_num_threads()} batch={batch} samples={n} repeats={repeats} "
          f"model={args.model} ({params} params), 32x32x3")
    print(HEADER)
    print("-" * len(HEADER))
    steps, smooth_n = (3, 4) if args.quick else (10, 30)
    rows = []
    for case in build_cases(model, x, t, n, steps, smooth_n, 0.03, args.quick):
        if args.quick:  # a smoke run: too small and too short for the targets to mean anything
            case.bound_target = case.captum_target = None
        rows.append(run_case(case, repeats, sync, args.no_captum_defaults or args.quick,
                             min_seconds=0.0 if args.quick else 0.25))
        print(format_row(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    main()
