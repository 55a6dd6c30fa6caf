"""``scripts/eval.py``: evaluate a checkpoint written by ``train.py`` (weights-only loading).

The numbers are those of :func:`evaluate_subset`, the function behind the per-epoch callback:
with the same data, subset (``explain.split``, ``explain.n_examples``), seed and RNG epoch key (by
default the checkpoint's epoch), they equal the values the callback logged for that epoch.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from rxlit.callbacks.callback import log_media, table_rows
from rxlit.callbacks.evaluate import EvalResult, evaluate_subset
from rxlit.callbacks.saliency import saliency_grid, saliency_maps
from rxlit.callbacks.spec import EvalSpec, parse_spec
from rxlit.callbacks.tables import markdown, nested, rich_tables
from rxlit.training.checkpoint import CheckpointError, checkpoint_origin, load_model, read_checkpoint

# What must agree between the checkpoint's data set and the one it is evaluated on.
DATA_KEYS = ("num_classes", "in_chans", "image_size")


def to_dict(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def data_config(cfg: dict, run_config: dict, path: str) -> dict:
    """The ``data=`` group given on the command line, else the one the checkpoint was trained with."""
    data = cfg.get("data") or run_config.get("data")
    if not data:
        raise CheckpointError(f"checkpoint {path} does not record its data config (no run_config); "
                              "pass data=<name> (e.g. data=digits)")
    data = dict(data)
    if data.get("seed") is None:  # same split as training
        data["seed"] = run_config.get("data", {}).get("seed", run_config.get("seed", 0))
    return data


def check_data_matches(trained: dict, data: dict, path: str) -> None:
    """Refuse a data set whose classes, channels or image size differ from the checkpoint's."""
    wrong = [f"{k}: checkpoint {trained.get(k)} vs data {data[k]}" for k in DATA_KEYS
             if k in trained and trained[k] != data[k]]
    if wrong:
        raise CheckpointError(f"checkpoint {path} was trained on data {trained.get('name')!r} and does not match "
                              f"data {data['name']!r} ({'; '.join(wrong)}); pass data={trained.get('name')} "
                              "or a checkpoint trained on this data set")


def build_data(cfg: dict, hparams: dict, path: str):
    from rxlit.training.run import data_info, make_datamodule

    data_cfg = data_config(cfg, hparams.get("run_config") or {}, path)
    datamodule = make_datamodule(data_cfg, int(data_cfg["seed"]))
    check_data_matches(hparams.get("data_info", {}), data_info(datamodule, data_cfg["name"]), path)
    attack = data_cfg.get("attack") or getattr(datamodule, "attack", None)
    return datamodule, attack


def eval_spec(cfg: dict, run_seed: int) -> EvalSpec:
    explain = dict(cfg.get("explain") or {})
    if not explain.pop("enabled", True):
        raise ValueError("explain=none evaluates nothing: pass explain=default (or another explain config)")
    spec = parse_spec(explain, seed=run_seed)
    return spec.with_split(cfg.get("split"))


def evaluate_checkpoint(cfg: DictConfig | dict) -> dict:
    """Evaluate ``cfg.ckpt_path``; write ``metrics.json`` and ``metrics.md`` in ``cfg.output_dir``,
    print the table and log the scalars (and, to W&B, the table and saliency grid). Returns the
    JSON payload."""
    cfg = to_dict(cfg)
    path = cfg.get("ckpt_path")
    if not path:
        raise CheckpointError("no checkpoint given: pass ckpt_path=checkpoints/<run name>/best.ckpt")
    ckpt = read_checkpoint(path)  # weights only; corrupt or foreign files fail here, clearly
    hparams = ckpt["hyper_parameters"]
    run_seed = int(hparams.get("seed", 0))
    spec = eval_spec(cfg, run_seed)  # unknown methods/metrics/options fail before any work
    datamodule, attack = build_data(cfg, hparams, path)
    device = pick_device(cfg.get("device", "auto"))
    model, _ = load_model(path, device=device)
    epoch = int(cfg["epoch"]) if cfg.get("epoch") is not None else int(ckpt.get("epoch", 0))
    subset = datamodule.eval_subset(spec.n_examples, split=spec.split)
    result = evaluate_subset(model, *subset, spec, epoch, attack=attack)
    payload = {"checkpoint": str(path), "trained": checkpoint_origin(path, ckpt), "epoch": epoch, "split": spec.split, "seed": spec.seed,
               "n_examples": int(subset[0].shape[0]), "time_s": result.time_s,
               "scalars": result.scalars(), "metrics": nested(result.summaries), "summaries": result.summaries}
    out = Path(cfg.get("output_dir") or ".")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(payload, indent=2, default=float))
    title = f"{Path(path).parent.name}/{Path(path).name}: {spec.split}, {payload['n_examples']} examples"
    (out / "metrics.md").write_text(markdown(result.summaries, title=title))
    print_tables(result, title)
    log_result(cfg, spec, model, subset, result, Path(path).parent.name, out, origin=payload["trained"])
    return payload


def print_tables(result: EvalResult, title: str) -> None:
    from rich.console import Console

    console = Console()
    for table in rich_tables(result.scalars(), title=title):
        console.print(table)


def log_result(cfg: dict, spec: EvalSpec, model, subset, result: EvalResult, run_name: str, out: Path,
               origin: dict | None = None) -> None:
    """Scalars to the configured logger; to W&B also the results table and the saliency grid."""
    from rxlit.training.loggers import build_logger, record_evaluated_checkpoint
    from rxlit.training.run import finish_wandb

    logger = build_logger(cfg.get("logger") or {"name": "none"}, f"eval-{run_name}", out)
    if logger is None:
        return
    try:
        logger.log_hyperparams({k: v for k, v in cfg.items() if k != "hydra"})
        if origin:
            record_evaluated_checkpoint(logger, origin)
        logger.log_metrics({k: float(v) for k, v in result.scalars().items()}, step=result.epoch)
        grid = None
        if spec.n_saliency_examples > 0 and spec.methods:
            grid = saliency_grid(*saliency_maps(model, *subset, spec, result.epoch),
                                 title=f"epoch {result.epoch} ({result.split})")
        log_media([logger], grid, table_rows(result), result, step=result.epoch)
        logger.save()
    finally:
        logger.finalize("success")
        finish_wandb(logger)
