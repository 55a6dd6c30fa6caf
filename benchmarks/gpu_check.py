"""The prepared GPU check: device tests, training and explanation throughput, evaluation cost.

    benchmarks/gpu_check.sh                       # on one GPU, within 8 minutes (the script's time limit)
    benchmarks/gpu_check.sh --device cpu --quick  # tiny sizes on a CPU: shows that every part works

Four sections, each printed as a markdown table as soon as it is measured (and written, with the raw
numbers, to ``$OUT/gpu_check.md`` and ``$OUT/gpu_check.json`` when ``OUT`` or ``--out`` is set, so a
run stopped by its time limit still leaves what it measured):

1. ``gpu`` tests: ``pytest -m gpu tests/gpu`` (on a CPU, ``-m "not gpu"``: the same test bodies with the
   CPU as the device); the full log goes to ``$OUT/gpu_tests.log``.
2. Training throughput: images/s of one training step of ResNet-18 on CIFAR-shaped synthetic data
   (``data=synthetic`` at 3x32x32, 10 classes) for the standard, PGD-7 and gradnorm objectives, in
   ``32-true`` and in ``bf16-mixed`` with ``channels_last``; ratios are to the standard step in the same
   precision, timed round-robin (median over rounds of the per-round ratios).
3. Explanation throughput of each default method (``configs/explain/default.yaml``) on ResNet-18 as a
   ratio to its pass-count bound: the cases, bound and timing of ``benchmarks/explain.py``.
4. Per-epoch evaluation cost at ``explain=default`` and ``explain=full``: ``rxlit.app.cost`` on a
   CIFAR-shaped run (ResNet-18, 50 000 synthetic 3x32x32 training images, ``trainer=gpu``); the cost
   fraction is evaluation time over training time for a ``trainer.max_epochs=10`` schedule.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_METHODS = ("grad", "grad_x_input", "integrated_gradients", "smoothgrad", "lime", "kernel_shap")
# CIFAR-shaped synthetic data and the CIFAR PGD budget (the step cost does not depend on eps).
CIFAR = ["data=synthetic", "data.image_size=32", "data.in_chans=3", "data.num_classes=10"]
QUICK_SIZE = ["data.image_size=16"]  # --quick: a quarter of the pixels
CIFAR_ATTACK = ["adv.eps=0.0313725", "adv.step=0.0078431"]


class Report:
    """Markdown sections printed as they come, mirrored to ``<out>/gpu_check.md`` and ``.json``."""

    def __init__(self, out: Path | None, header: list[str]):
        self.out, self.header, self.sections, self.data = out, header, {}, {}
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        print("\n".join(header), flush=True)
        self.save()

    @property
    def lines(self) -> list[str]:
        return self.header + [line for block in self.sections.values() for line in block]

    def section(self, title: str, lines: list[str], data, final: bool = True) -> None:
        """Set (or, while a section is measured, update) a section; print it when ``final``."""
        self.sections[title] = ["", f"## {title}", "", *lines]
        self.data[title] = data
        if final:
            print("\n".join(self.sections[title]), flush=True)
        self.save()

    def save(self) -> None:
        if self.out is None:
            return
        (self.out / "gpu_check.md").write_text("\n".join(self.lines) + "\n")
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=2, default=str))


def environment(device: torch.device) -> list[str]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        where = (f"{props.name} ({props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor}), "
                 f"CUDA {torch.version.cuda}")
    else:
        where = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return [f"# rxlit GPU check: {where}", "",
            f"torch {torch.__version__}, Python {platform.python_version()}, commit {commit.stdout.strip() or '?'}, "
            f"{time.strftime('%Y-%m-%d %H:%M')}. TF32: off in the tests, PyTorch's defaults in the timings."]


def sync_for(device: torch.device):
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


# ------------------------------------------------------------------------------------ 1. the tests

def run_tests(device: torch.device, out: Path | None, timeout: float) -> tuple[list[str], dict]:
    marker = "gpu" if device.type == "cuda" else "not gpu"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker, "tests/gpu"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        log, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as err:
        log, code = f"{err.stdout or ''}{err.stderr or ''}\n(time limit of {timeout:.0f} s reached)", "timeout"
    seconds = time.perf_counter() - start
    if out is not None:
        (out / "gpu_tests.log").write_text(log if isinstance(log, str) else log.decode())
    summary = next((line.strip("= ") for line in reversed(log.splitlines()) if re.search(r"\d+ (passed|failed|error|skipped)", line)),
                   "no summary (see gpu_tests.log)")
    failed = [line for line in log.splitlines() if line.startswith(("FAILED", "ERROR"))]
    lines = ["| tests | result | exit | s |", "| --- | --- | --- | --- |",
             f"| `pytest -m \"{marker}\" tests/gpu` | {summary} | {code} | {seconds:.0f} |"]
    lines += [f"- {line}" for line in failed[:20]]
    return lines, {"command": " ".join(cmd), "summary": summary, "exit": code, "seconds": seconds, "failed": failed}


# ------------------------------------------------------------------------- 2. training throughput

def compose(overrides: list[str]) -> dict:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = OmegaConf.to_container(hydra_compose("train", overrides))
    cfg.pop("paths")  # hydra-only interpolations; nothing is written
    return OmegaConf.to_container(OmegaConf.create(cfg), resolve=True)


class Stepper:
    """One regime's RxLitModule (built from the configs, as train.py does) and its optimiser."""

    def __init__(self, overrides: list[str], device: torch.device, batch_size: int, bf16: bool, quick: bool):
        from rxlit.app.train import make_datamodule, make_module
        from rxlit.training.optim import build_optimizer

        cfg = compose([*CIFAR, f"data.batch_size={batch_size}", f"data.n_train={batch_size}",
                       f"channels_last={str(bf16).lower()}", *(QUICK_SIZE if quick else []), *overrides])
        torch.manual_seed(0)
        datamodule = make_datamodule(cfg["data"], 0)
        datamodule.setup("fit")
        x, y = next(iter(datamodule.train_dataloader()))
        self.batch = (x.to(device), y.to(device))
        self.module = make_module(cfg, datamodule).to(device).train()
        self.optimizer = build_optimizer(self.module.parameters(), "sgd", lr=0.01)
        # what Lightning's bf16-mixed does around training_step (the backward runs outside autocast)
        self.autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def step(self) -> None:
        with self.autocast():
            loss = self.module.training_step(self.batch, 0)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def time_steppers(steppers: dict, sync, rounds: int, steps: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per step of each stepper, round-robin: every round times ``steps`` steps of each."""
    for stepper in steppers.values():
        for _ in range(warmup):
            stepper.step()
    sync()
    times = {name: [] for name in steppers}
    for _ in range(rounds):
        for name, stepper in steppers.items():
            start = time.perf_counter()
            for _ in range(steps):
                stepper.step()
            sync()
            times[name].append((time.perf_counter() - start) / steps)
    return times


def train_throughput(device: torch.device, quick: bool) -> tuple[list[str], dict]:
    batch, rounds, steps, warmup = (4, 1, 1, 1) if quick else (128, 5, 10, 3)
    k = 7
    regimes = {  # name: (config overrides, target on the step-time ratio; benchmarks/train_step.py's)
        "standard": ([], None),
        f"pgd-{k}": (["adv=pgd", f"adv.steps={k}", *CIFAR_ATTACK], 1.15 * (k + 1)),
        "gradnorm": (["reg=gradnorm"], 3.0),
    }
    side = 16 if quick else 32
    lines = [f"ResNet-18, synthetic 3x{side}x{side}, 10 classes, batch {batch}, SGD; {rounds} rounds of {steps} steps "
             f"after {warmup} warm-up steps; median over rounds.", "",
             "| regime | precision | images/s | x standard step | target |", "| --- | --- | --- | --- | --- |"]
    data = {}
    sync = sync_for(device)
    for precision, bf16 in (("32-true", False), ("bf16-mixed + channels_last", True)):
        steppers = {name: Stepper(["model=resnet18", *overrides], device, batch, bf16, quick)
                    for name, (overrides, _) in regimes.items()}
        times = time_steppers(steppers, sync, rounds, steps, warmup)
        reference = times["standard"]
        for name, (_, target) in regimes.items():
            ratio = statistics.median(t / r for t, r in zip(times[name], reference))
            rate = batch / statistics.median(times[name])
            verdict = "" if target is None or quick else f"<= {target:.2f}: {'met' if ratio <= target else 'MISSED'}"
            lines.append(f"| {name} | {precision} | {rate:.0f} | {ratio:.2f} | {verdict} |")
            data[f"{name} {precision}"] = {"images_per_s": rate, "ratio_to_standard": ratio, "seconds": times[name]}
        del steppers
    return lines, data


# ---------------------------------------------------------------------- 3. explanation throughput

def load_explain_benchmark():
    """benchmarks/explain.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("rxlit_bench_explain", REPO / "benchmarks" / "explain.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def explain_throughput(device: torch.device, quick: bool, model_name: str = "resnet18") -> tuple[list[str], dict]:
    bench = load_explain_benchmark()
    bench.captum_cases = lambda *args, **kwargs: {}  # only ours vs the bound here (Captum: benchmarks/explain.py)
    batch, n, steps, smooth_n, repeats = (2, 8, 3, 4, 1) if quick else (32, 100, 10, 30, 7)
    torch.manual_seed(0)
    if model_name == "resnet18":
        from rxlit.models import build_model

        model = build_model("resnet18", num_classes=10, in_chans=3, image_size=32, mean=[0.49, 0.48, 0.45],
                            std=[0.25, 0.24, 0.26])
    else:  # benchmarks/explain.py's small models (small_resnet: the model of its CPU table)
        model = bench.MODELS[model_name]()
    model = model.to(device).eval()
    x = torch.rand(batch, 3, 32, 32, device=device)
    with torch.no_grad():
        target = model(x).argmax(1)
    cases = [c for c in bench.build_cases(model, x, target, n, steps, smooth_n, 0.03, quick=True) if c.name in DEFAULT_METHODS]
    title = "ResNet-18 (CIFAR stem)" if model_name == "resnet18" else f"{model_name} (benchmarks/explain.py)"
    lines = [f"{title}, batch {batch} of 3x32x32, {n} samples on 64 patches, IG {steps} steps, "
             f"SmoothGrad n = {smooth_n}; {repeats} rounds; ours / bound: median [interquartile range] of the "
             "per-round ratios (benchmarks/explain.py).", "",
             "| method | examples/s | ours / bound | target |", "| --- | --- | --- | --- |"]
    data = {}
    for case in cases:
        row = bench.run_case(case, repeats, sync_for(device), skip_defaults=True, min_seconds=0.0 if quick else 0.25)
        q1, q2, q3 = row["to_bound"]
        target = "" if quick or case.bound_target is None else f"<= {case.bound_target}: {'met' if q2 <= case.bound_target else 'MISSED'}"
        lines.append(f"| {case.name} | {row['ours_ex_s']:.1f} | {q2:.2f} [{q1:.2f}, {q3:.2f}] | {target} |")
        data[case.name] = {"examples_per_s": row["ours_ex_s"], "to_bound": row["to_bound"]}
    return lines, data


# ----------------------------------------------------------------------------- 4. evaluation cost

def evaluation_cost(device: torch.device, quick: bool, train_size: int, epochs: int,
                    partial=lambda lines, data: None) -> tuple[list[str], dict]:
    """Both explain settings; ``partial(lines, data)`` receives the table after the first one."""
    from rxlit.app.cost import measure, n_evaluations

    trainer = "trainer=gpu" if device.type == "cuda" else "trainer=cpu"
    if quick:  # a smoke run: a small CNN on a few 16x16 images
        run = ["data=synthetic", "data.in_chans=3", "data.image_size=16", "data.n_train=64", "data.batch_size=32",
               "model=small_cnn", "model.hidden=64"]
        settings = {"default": ["explain.n_examples=4"], "full": ["explain.n_examples=2"]}
    else:
        run = [*CIFAR, f"data.n_train={train_size}", "model=resnet18"]
        settings = {"default": [], "full": []}
    schedule = 10  # trainer.max_epochs of configs/trainer: the cost fraction of a 10-epoch run
    lines = [f"{'small_cnn, 64 images of 3x16x16 (quick)' if quick else f'ResNet-18, {train_size} synthetic 3x32x32 training images'}, "
             f"batch {32 if quick else 128}, {trainer}, 32-true; {epochs} epoch(s), each followed by one evaluation "
             "(python -m rxlit.app.cost); median over epochs"
             f"{' (of two: their mean, with the first epoch warm-up)' if epochs == 2 else ''}.", "",
             f"| explain | evaluation s | training epoch s | evaluation / epoch | every_n_epochs | cost fraction ({schedule} epochs) |",
             "| --- | --- | --- | --- | --- | --- |"]
    data = {}
    for name, extra in settings.items():
        result = measure([*run, trainer, f"trainer.max_epochs={epochs}", "eval_attack.n_examples=256",
                          f"explain={name}", *extra])
        every = result["every_n_epochs"]
        fraction = result["median_ratio"] * n_evaluations(schedule, every) / schedule
        eval_s = statistics.median(r["eval_s"] for r in result["rounds"])
        epoch_s = statistics.median(r["epoch_s"] for r in result["rounds"])
        lines.append(f"| {name} | {eval_s:.1f} | {epoch_s:.1f} | {result['median_ratio']:.3f} | {every} | {fraction:.3f} |")
        data[name] = {**result, "cost_fraction_10_epochs": fraction}
        partial(lines, data)
    return lines, data


# ------------------------------------------------------------------------------------------- main

SECTIONS = ("tests", "train", "explain", "cost")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: shows that every part runs, measures nothing")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for gpu_check.md/.json (default: $OUT)")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    parser.add_argument("--budget", type=float, default=420.0,
                        help="seconds; a section that would start after this is skipped (gpu_check.sh stops at 465)")
    parser.add_argument("--test-timeout", type=float, default=240.0, help="seconds for the pytest run")
    parser.add_argument("--explain-model", default="resnet18", choices=["resnet18", "small_resnet", "tiny_cnn"],
                        help="model of the explanation throughput (small_resnet: that of benchmarks/explain.py's table)")
    parser.add_argument("--cost-train-size", type=int, default=50_000, help="training images of the cost run")
    parser.add_argument("--cost-epochs", type=int, default=None,
                        help="epochs (= evaluations) per explain setting (default 2; 1 with --quick)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available here (torch.cuda.is_available() is False); "
              "run with --device cpu --quick to check the script on a CPU", file=sys.stderr)
        return 2
    os.environ.setdefault("WANDB_MODE", "offline")
    started = time.perf_counter()
    header = environment(device) + (["", "**--quick: tiny sizes, a smoke run; no number here is a measurement.**"]
                                    if args.quick else [])
    report = Report(Path(args.out) if args.out else None, header)
    plan = {
        "tests": ("gpu tests", lambda: run_tests(device, report.out, args.test_timeout)),
        "train": ("training throughput", lambda: train_throughput(device, args.quick)),
        "explain": ("explanation throughput", lambda: explain_throughput(device, args.quick, args.explain_model)),
        "cost": ("per-epoch evaluation cost", lambda: evaluation_cost(
            device, args.quick, args.cost_train_size, args.cost_epochs or (1 if args.quick else 2),
            partial=lambda lines, data: report.section("per-epoch evaluation cost", lines, data, final=False))),
    }
    # What the runs print (Lightning, the run summaries) goes to a log, so the console shows the tables.
    log_path = report.out / "gpu_check_runs.log" if report.out is not None else Path(os.devnull)
    failures = 0
    for key in [k for k in SECTIONS if k in args.only]:
        title, run = plan[key]
        elapsed = time.perf_counter() - started
        if elapsed > args.budget:
            report.section(title, [f"not run: {elapsed:.0f} s spent, over the {args.budget:.0f} s budget"], None)
            continue
        print(f"\n... {title}", flush=True)
        try:
            with open(log_path, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                lines, data = run()
            failures += key == "tests" and data["exit"] != 0
        except (KeyboardInterrupt, SystemExit):  # gpu_check.sh's time limit (Lightning turns it into exit(1))
            measured = report.sections.get(title, ["", "", ""])[3:]
            report.section(title, [*measured, "", "stopped here by the time limit"], report.data.get(title))
            return 124
        except Exception as err:  # one broken section must not hide the others' numbers
            failures += 1
            lines, data = [f"FAILED: {type(err).__name__}: {err}"], {"error": repr(err)}
        report.section(title, [*lines, "", f"({time.perf_counter() - started - elapsed:.0f} s)"], data)
    print("\n" + "=" * 100 + "\n" + "\n".join(report.lines), flush=True)  # the whole table, in one piece
    print(f"\ngpu_check: {time.perf_counter() - started:.0f} s in all", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
