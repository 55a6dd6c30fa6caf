"""Speed of rxlit.metrics against Captum, Quantus and the pass-count bound.

    nice -n 5 python benchmarks/metrics.py            # batch 16, n = 50 (paper settings), ~6 min on 2 shared cores
    nice -n 5 python benchmarks/metrics.py --quick    # batch 4, n = 10, 2 rounds: a sanity run (~2 min)

Four metric (method) pairs at matched settings (same model, samples, radii, method settings):

* local_lipschitz(grad)        n Gaussian neighbours, sigma 0.03
* max_sensitivity(smoothgrad)  n uniform samples, radius 0.02; SmoothGrad sigma 0.03, 30 samples
* local_lipschitz(lime)        n Gaussian neighbours; LIME 100 samples, 16 grid features, ridge 1, cosine kernel
* infidelity(grad)             100 noisy-baseline perturbations, optimal rescaling on

Columns:

* ``bound``: the same number of forward (+ backward) passes of the same model on the same kind of
  inputs (perturbed exactly as the metric perturbs them, prepared outside the timer), batched in
  the same memory-budgeted chunks, with no metric logic. The inputs matter: max-pooling's speed
  depends on the data, so ``x + 0.01`` repeated would be an unfair (too fast) bound.
* ``ours``: torch's generator (as Captum and Quantus use); ``keyed``: the per-example
  ``ExampleRNG`` (seed, index, epoch) that the evaluation callback uses.
* ``captum``: ``sensitivity_max`` (Captum has no Lipschitz estimate, so ``sensitivity_max`` with
  Gaussian perturbations, the same passes, stands in) and ``infidelity``, with Captum's
  Saliency / NoiseTunnel / Lime explainers and ``max_examples_per_batch`` set to our chunk size.
* ``quantus``: ``LocalLipschitzEstimate`` / ``MaxSensitivity`` with the Captum explainers. Quantus
  loops over samples in Python, so it runs at SMALL settings (``--quantus-n``: n = 10 samples
  instead of 50; ``--quantus-batch``: the same batch) and is compared with ours at those same
  settings (``ours@q``). Quantus has no infidelity with these perturbations (n/a).

Timing: every round times each column of a case back to back (interleaved), ratios are taken
within a round and the table shows median times and the median of the per-round ratios, so load
from other processes on the shared machine affects both sides of a ratio alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from rxlit.explain.features import grid_mask
from rxlit.explain.passes import gradient_rows
from rxlit.metrics import infidelity, local_lipschitz, max_sensitivity
from rxlit.metrics.engine import default_chunk

SG_SAMPLES, SIGMA, RADIUS, LIME_SAMPLES, LIME_FEATURES, INFD_SAMPLES = 30, 0.03, 0.02, 100, 16, 100
CASES = ("local_lipschitz(grad)", "max_sensitivity(smoothgrad)", "local_lipschitz(lime)", "infidelity(grad)")
CHEAP = ("local_lipschitz(grad)", "infidelity(grad)")  # ~0.1 s each: 3x the rounds


def tiny_cnn(classes: int = 10) -> nn.Module:
    """conv16-relu-pool-conv32-relu-pool-fc for 3x16x16 inputs (about 10 k parameters)."""
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 4 * 4, classes)).eval()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --- the pass-count bound: the model passes alone, on inputs prepared outside the timer -----------

def forward_rows(model, x, target, chunk):
    with torch.no_grad():
        return torch.cat([model(x[i:i + chunk]).gather(1, target[i:i + chunk, None])
                          for i in range(0, len(x), chunk)])


def repeat(x, y, k):
    return x.repeat_interleave(k, 0), y.repeat_interleave(k)


def lime_images(points, k_rows):
    """``k_rows`` coalition images of every point: random halves of 16 grid patches set to 0."""
    labels = grid_mask(points.shape[-2], points.shape[-1], n_groups=LIME_FEATURES).flatten()
    rows = points.repeat_interleave(k_rows, 0)
    keep = torch.rand(rows.shape[0], int(labels.max()) + 1) < 0.5
    return rows * keep[:, labels].view(rows.shape[0], 1, *points.shape[-2:])


def bound(case, model, x, y, n):
    """The passes of ``case`` without the metric: a closure over prepared inputs."""
    chunk = default_chunk(x, None)
    near, y_near = repeat(x, y, n)
    if case == "local_lipschitz(grad)":
        near = near + SIGMA * torch.randn_like(near)
        return lambda: (gradient_rows(model, x, y, chunk_size=chunk), gradient_rows(model, near, y_near, chunk_size=chunk))
    if case == "max_sensitivity(smoothgrad)":
        near = near + RADIUS * (2 * torch.rand_like(near) - 1)
        inner_x, inner_yx = repeat(x, y, SG_SAMPLES)
        inner, inner_y = repeat(near, y_near, SG_SAMPLES)
        inner_x, inner = inner_x + SIGMA * torch.randn_like(inner_x), inner + SIGMA * torch.randn_like(inner)
        return lambda: (gradient_rows(model, inner_x, inner_yx, chunk_size=chunk),
                        gradient_rows(model, inner, inner_y, chunk_size=chunk))
    if case == "local_lipschitz(lime)":
        near = near + SIGMA * torch.randn_like(near)
        at_x, y_x = lime_images(x, LIME_SAMPLES), y.repeat_interleave(LIME_SAMPLES)
        around, y_around = lime_images(near, LIME_SAMPLES), y_near.repeat_interleave(LIME_SAMPLES)
        return lambda: (forward_rows(model, at_x, y_x, chunk), forward_rows(model, around, y_around, chunk))
    if case == "infidelity(grad)":
        rows, y_rows = repeat(x, y, INFD_SAMPLES)
        baseline = (-0.2 * torch.randn_like(rows)).clamp(0, 1)  # x - I of the noisy baseline
        return lambda: (gradient_rows(model, x, y, chunk_size=chunk), forward_rows(model, x, y, chunk),
                        forward_rows(model, baseline, y_rows, chunk))
    raise ValueError(case)


# --- ours ------------------------------------------------------------------------------------------

def ours(case, model, x, y, n, **keyed):
    if case == "local_lipschitz(grad)":
        return lambda: local_lipschitz(model, x, y, "grad", n_samples=n, sigma=SIGMA, **keyed)
    if case == "max_sensitivity(smoothgrad)":
        return lambda: max_sensitivity(model, x, y, "smoothgrad", n_samples=n, radius=RADIUS,
                                       method_options={"sigma": SIGMA, "n_samples": SG_SAMPLES}, **keyed)
    if case == "local_lipschitz(lime)":
        lime = {"n_samples": LIME_SAMPLES, "n_features": LIME_FEATURES}
        return lambda: local_lipschitz(model, x, y, "lime", n_samples=n, sigma=SIGMA, method_options=lime, **keyed)
    if case == "infidelity(grad)":
        return lambda: infidelity(model, x, y, method="grad", n_samples=INFD_SAMPLES, **keyed)
    raise ValueError(case)


# --- Captum and Quantus at matched settings --------------------------------------------------------

def captum_explainers(model, x):
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime, NoiseTunnel, Saliency
    from captum.attr._core.lime import get_exp_kernel_similarity_function

    saliency, tunnel = Saliency(model), NoiseTunnel(Saliency(model))
    lime = Lime(model, interpretable_model=SkLearnRidge(alpha=1.0),
                similarity_func=get_exp_kernel_similarity_function("cosine", 1.0))
    mask = grid_mask(x.shape[-2], x.shape[-1], n_groups=LIME_FEATURES).view(1, 1, *x.shape[-2:]).expand(1, *x.shape[1:])

    def grad(inputs, target):
        return saliency.attribute(inputs, target=target, abs=False)

    def smoothgrad(inputs, target):
        return tunnel.attribute(inputs, nt_type="smoothgrad", nt_samples=SG_SAMPLES, stdevs=SIGMA, target=target,
                                nt_samples_batch_size=SG_SAMPLES, abs=False)

    def lime_fn(inputs, target):
        return lime.attribute(inputs, target=target, feature_mask=mask, n_samples=LIME_SAMPLES,
                              perturbations_per_eval=LIME_SAMPLES)

    return {"grad": grad, "smoothgrad": smoothgrad, "lime": lime_fn}


def _unwrap(fn):
    def call(inputs, target=None):
        single = isinstance(inputs, tuple)
        out = fn(inputs[0] if single else inputs, target)
        return (out,) if single else out
    return call


def captum(case, model, x, y, n):
    from captum.metrics import infidelity as captum_infidelity
    from captum.metrics import sensitivity_max

    ex = captum_explainers(model, x)
    B, chunk = x.shape[0], default_chunk(x, None)
    per_batch = {"grad": chunk, "smoothgrad": chunk // SG_SAMPLES, "lime": chunk // LIME_SAMPLES}
    gauss = lambda inputs, radius: inputs + SIGMA * torch.randn_like(inputs)  # noqa: E731
    uniform = lambda inputs, radius: inputs + (2 * torch.rand_like(inputs) - 1) * radius  # noqa: E731

    def sens(method, perturb):
        limit = min(B * n, max(B, per_batch[method]))  # our memory budget; Captum needs >= B
        return lambda: sensitivity_max(_unwrap(ex[method]), x, target=y, perturb_func=perturb, perturb_radius=RADIUS,
                                       n_perturb_samples=n, max_examples_per_batch=limit)

    def noisy_baseline(inputs):
        pert = inputs - (-0.2 * torch.randn_like(inputs)).clamp(0, 1)
        return pert, inputs - pert

    if case == "local_lipschitz(grad)":
        return sens("grad", gauss)
    if case == "max_sensitivity(smoothgrad)":
        return sens("smoothgrad", uniform)
    if case == "local_lipschitz(lime)":
        return sens("lime", gauss)
    # Captum's infidelity takes attributions: computing them is part of the metric, as in ours
    limit = min(B * INFD_SAMPLES, chunk)
    return lambda: captum_infidelity(model, noisy_baseline, x, ex["grad"](x, y), target=y,
                                     n_perturb_samples=INFD_SAMPLES, normalize=True, max_examples_per_batch=limit)


def quantus(case, model, x, y, n):
    if case == "infidelity(grad)":
        return None
    import quantus as qt

    ex = captum_explainers(model, x)

    def explain_func(fn):
        def call(model, inputs, targets, **_):
            return fn(torch.as_tensor(inputs), torch.as_tensor(targets)).detach().numpy()
        return call

    if case == "max_sensitivity(smoothgrad)":
        metric = qt.MaxSensitivity(nr_samples=n, lower_bound=RADIUS, normalise=False, abs=False,
                                   disable_warnings=True)
        method = "smoothgrad"
    else:
        metric = qt.LocalLipschitzEstimate(nr_samples=n, perturb_std=SIGMA, normalise=False, abs=False,
                                           disable_warnings=True)
        method = "grad" if case == "local_lipschitz(grad)" else "lime"
    fn = ex[method]

    def run():  # the explanation at x is part of the metric, as in ours
        a = fn(x, y).detach().numpy()
        return metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a, explain_func=explain_func(fn),
                      channel_first=True, device="cpu", batch_size=len(x))

    return run


# --- the table ---------------------------------------------------------------------------------------

def measure(columns: dict[str, Callable | None], rounds: int, slow: set[str], slow_rounds: int) -> dict[str, dict]:
    """Interleaved rounds; returns per column the median time and the per-round times."""
    live = {k: fn for k, fn in columns.items() if fn is not None}
    for fn in live.values():
        fn()  # warm-up: allocator, oneDNN primitives, lazy imports
    times = {k: [] for k in live}
    for r in range(rounds):
        for k, fn in live.items():
            if k in slow and r >= slow_rounds:
                continue
            times[k].append(timed(fn))
    return times


def ratio(times, num, den) -> float | None:
    """Median over rounds of num/den, pairing the rounds both columns ran in."""
    if num not in times or den not in times:
        return None
    pairs = list(zip(times[num], times[den]))
    return statistics.median(a / b for a, b in pairs)


def fmt(value, width, suffix=""):
    if value is None:
        return f"{'n/a':>{width}s}"
    return f"{value:{width - len(suffix)}.{3 if not suffix else 2}f}{suffix}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 4, n = 10, 2 rounds")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--n", type=int, default=None, help="neighbours per example (default 50)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: least sensitive to shared cores)")
    parser.add_argument("--quantus-batch", type=int, default=None, help="default: the batch")
    parser.add_argument("--quantus-n", type=int, default=10)
    parser.add_argument("--cases", nargs="*", default=list(CASES), help="a subset of: " + ", ".join(CASES))
    parser.add_argument("--skip", nargs="*", default=[], help="libraries to skip: captum quantus")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    np.random.seed(0)
    batch = args.batch or (4 if args.quick else 16)
    n = args.n or (10 if args.quick else 50)
    rounds = args.rounds or (2 if args.quick else 5)
    model = tiny_cnn()
    x = torch.rand(batch, 3, 16, 16)
    y = model(x).argmax(1)
    qb, qn = args.quantus_batch or batch, args.quantus_n
    xq, yq = x[:qb], y[:qb]

    print(f"batch {batch} of 3x16x16 (tiny CNN), n = {n}, {rounds} interleaved rounds, {args.threads} thread(s); "
          f"Quantus at batch {qb}, n = {qn} against ours@q at the same settings")
    header = ("| metric (method) | bound s | ours s | keyed s | ours/bound | keyed/bound | captum s | captum/ours "
              "| ours@q s | quantus s | quantus/ours@q |")
    print(header)
    print("|" + "|".join("---" for _ in header.split("|")[1:-1]) + "|")
    for case in args.cases:
        columns = {"bound": bound(case, model, x, y, n), "ours": ours(case, model, x, y, n),
                   "keyed": ours(case, model, x, y, n, seed=0)}
        if "captum" not in args.skip:
            columns["captum"] = captum(case, model, x, y, n)
        if "quantus" not in args.skip:
            columns["ours@q"] = ours(case, model, xq, yq, qn)
            columns["quantus"] = quantus(case, model, xq, yq, qn)
        slow = {"captum", "quantus"} if case == "local_lipschitz(lime)" else {"quantus"}
        case_rounds = rounds * 3 if case in CHEAP else rounds  # short timings: more rounds, same wall time
        times = measure(columns, case_rounds, slow, slow_rounds=1 if args.quick else 2)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"| {case} | {fmt(med.get('bound'), 7)} | {fmt(med.get('ours'), 7)} | {fmt(med.get('keyed'), 7)} | "
              f"{fmt(ratio(times, 'ours', 'bound'), 6, 'x')} | {fmt(ratio(times, 'keyed', 'bound'), 6, 'x')} | "
              f"{fmt(med.get('captum'), 7)} | {fmt(ratio(times, 'captum', 'ours'), 6, 'x')} | "
              f"{fmt(med.get('ours@q'), 7)} | {fmt(med.get('quantus'), 7)} | "
              f"{fmt(ratio(times, 'quantus', 'ours@q'), 6, 'x')} |", flush=True)


if __name__ == "__main__":
    main()
