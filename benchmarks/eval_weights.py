"""Cost of ``scripts/eval.py weights=`` against ``ckpt_path=`` on the same network, as a ratio.

Trains a tiny digits model once (train.py, 2 batches), saves its network as a plain state dict,
then times, round by round (interleaved, so load from other processes hits both alike):

* the whole evaluation (``evaluate_checkpoint``: load, data, explain= matrix, files) by each route;
* loading alone: ``load_model(ckpt)`` against ``read_weights`` + ``build_with_weights``.

Target (issue 10): weights= costs no more than ckpt_path= (ratio <= 1 within timing noise).

    python benchmarks/eval_weights.py [--model small_cnn] [--rounds 5] [--explain default]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from rxlit.app.evaluate import evaluate_checkpoint
from rxlit.app.train import train
from rxlit.models import build_with_weights, read_weights
from rxlit.training.checkpoint import load_model

warnings.filterwarnings("ignore")
CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")


def config(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def trained_checkpoint(root: Path, model: str) -> Path:
    overrides = [f"model={model}", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                 "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "eval_attack.n_examples=16",
                 "eval_attack.steps=2", "logger=none", "callbacks.progress_bar=tqdm", "callbacks.lr_monitor=false",
                 "explain=none", f"paths.output_dir={root / 'out'}", f"paths.checkpoints={root / 'ckpt'}"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        report = train(config("train", overrides))
    return Path(report["checkpoint_dir"]) / "last.ckpt"


def quiet(fn, *args):
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--explain", default="default")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ckpt = trained_checkpoint(root, args.model)
        model, hparams = load_model(ckpt)
        weights = root / "plain_state_dict.pt"
        torch.save(model.backbone.state_dict(), weights)
        common = [f"explain={args.explain}", "explain.progress=false", "logger=none", "epoch=0", "seed=0"]
        by_ckpt = config("eval", [f"ckpt_path={ckpt}", f"output_dir={root / 'a'}", *common])
        by_weights = config("eval", [f"weights={weights}", f"model={args.model}", "data=digits",
                                     f"output_dir={root / 'b'}", *common])
        info = hparams["data_info"]

        def load_weights():
            build_with_weights(args.model, read_weights(weights), info["num_classes"], info["in_chans"],
                               info["image_size"], data_mean=info["mean"], data_std=info["std"])

        jobs = {"eval ckpt_path=": (evaluate_checkpoint, by_ckpt), "eval weights=": (evaluate_checkpoint, by_weights),
                "load ckpt_path=": (load_model, ckpt), "load weights=": (load_weights,)}
        for fn, *fn_args in jobs.values():  # warm-up
            quiet(fn, *fn_args)
        times = {name: [] for name in jobs}
        for _ in range(args.rounds):
            for name, (fn, *fn_args) in jobs.items():
                times[name].append(quiet(fn, *fn_args))
    eval_ratio = statistics.median(w / c for w, c in zip(times["eval weights="], times["eval ckpt_path="]))
    load_ratio = statistics.median(w / c for w, c in zip(times["load weights="], times["load ckpt_path="]))
    print(f"model {args.model} on digits, explain={args.explain}, {args.rounds} interleaved rounds, "
          f"{args.threads} thread(s)")
    for name, t in times.items():
        print(f"  {name:16s} median {statistics.median(t):8.3f} s")
    print(f"  whole evaluation: weights= / ckpt_path= = {eval_ratio:.3f} (median of per-round ratios; target <= 1)")
    print(f"  loading only:     weights= / ckpt_path= = {load_ratio:.3f}")


if __name__ == "__main__":
    main()
