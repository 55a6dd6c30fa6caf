"""``scripts/eval.py`` and ``rxlit.evaluate``: evaluate a train.py checkpoint, weights from elsewhere,
or a model object in memory.

Three ways in, one evaluation (:func:`evaluate_subset`, the function behind the per-epoch callback):

* ``ckpt_path=``: a checkpoint written by ``train.py`` (weights-only loading). With the same data,
  subset (``explain.split``, ``explain.n_examples``), seed and RNG epoch key (by default the
  checkpoint's epoch) the values equal those the callback logged for that epoch.
* ``model=<arch> weights=<file> data=<data set>``: a state dict, RobustBench, robustness-library or
  foreign Lightning file (:mod:`rxlit.models.weights`), with the normalisation resolved and
  reported (:func:`rxlit.models.resolve_normalization`).
* :func:`evaluate_model` (``rxlit.evaluate``): any ``nn.Module`` mapping images to logits.

Every route writes ``metrics.json`` (values, the normalisation used, what was loaded) and
``metrics.md`` in the output folder, saves the saliency grid as ``saliency.png``, prints the
table and logs to the configured logger.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from rxlit.app.configs import group_config, to_dict
from rxlit.evaluation.callback import log_media, table_rows
from rxlit.evaluation.engine import EvalResult, evaluate_subset
from rxlit.evaluation.progress import EvalProgress
from rxlit.evaluation.saliency import saliency_grid, saliency_maps, save_png
from rxlit.evaluation.spec import EvalSpec, parse_spec
from rxlit.evaluation.tables import markdown, nested, rich_tables
from rxlit.models import Normalize, WeightsError, build_with_weights, read_weights
from rxlit.training.checkpoint import CheckpointError, checkpoint_origin, load_model, read_checkpoint

# What must agree between the checkpoint's data set and the one it is evaluated on.
DATA_KEYS = ("num_classes", "in_chans", "image_size")
SUBSETS = ("stratified", "first_n")
# model.* keys of configs/eval.yaml that describe loading, not the architecture.
LOAD_KEYS = ("mean", "std", "normalize", "strict", "num_classes", "pretrained", "checkpoint_path")


def pick_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name} but torch.cuda.is_available() is False here: pass device=cpu "
                         "(or device=auto, which takes a GPU when there is one)")
    return device


@dataclass
class Source:
    """A model ready to evaluate, with its data and what to report about how it was loaded."""

    model: nn.Module
    datamodule: object
    attack: dict | None
    epoch: int
    seed: int
    label: str
    info: dict = field(default_factory=dict)


# ------------------------------------------------------------------------- rxlit checkpoints
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
    from rxlit.app.train import data_info, make_datamodule

    data_cfg = data_config(cfg, hparams.get("run_config") or {}, path)
    datamodule = make_datamodule(data_cfg, int(data_cfg["seed"]))
    check_data_matches(hparams.get("data_info", {}), data_info(datamodule, data_cfg["name"]), path)
    attack = data_cfg.get("attack") or getattr(datamodule, "attack", None)
    return datamodule, attack


def checkpoint_source(cfg: dict, path: str, device: torch.device) -> tuple[Source, EvalSpec]:
    try:
        ckpt = read_checkpoint(path)  # weights only; corrupt or foreign files fail here, clearly
    except CheckpointError as err:
        if "not written by rxlit" not in str(err):
            raise
        raise CheckpointError(f"{err}. For weights from elsewhere use model=<arch> weights={path} "
                              "data=<data set> [weights_format=...]") from None
    hparams = ckpt["hyper_parameters"]
    run_seed = int(hparams.get("seed", 0))
    spec = eval_spec(cfg, run_seed)  # unknown methods/metrics/options fail before any work
    datamodule, attack = build_data(cfg, hparams, path)
    model, _ = load_model(path, device=device)
    given = {k: v for k, v in (cfg.get("model") or {}).items() if k in LOAD_KEYS and v not in (None, True, False)}
    if given or (cfg.get("model") or {}).get("normalize") is False:
        print(f"note: {', '.join(f'model.{k}' for k in given) or 'model.normalize'} applies to weights= only; "
              "a train.py checkpoint brings its own normalisation")
    epoch = int(cfg["epoch"]) if cfg.get("epoch") is not None else int(ckpt.get("epoch", 0))
    label = f"{Path(path).parent.name}/{Path(path).name}"
    info = {"checkpoint": str(path), "trained": checkpoint_origin(path, ckpt), "model": {"name": hparams["model"].get("name")},
            "normalization": {**normalizer_stats(model), "source": "the checkpoint (rxlit)"}}
    return Source(model, datamodule, attack, epoch, run_seed, label, info), spec


def normalizer_stats(model: nn.Module) -> dict:
    norm = getattr(model, "normalize", None)
    if not isinstance(norm, Normalize):
        return {"mean": None, "std": None}
    return {"mean": norm.mean.tolist(), "std": norm.std.tolist()}


# ------------------------------------------------------------------------------ foreign weights
def weights_source(cfg: dict, path: str, device: torch.device) -> tuple[Source, EvalSpec]:
    from rxlit.app.train import data_info, make_datamodule

    model_cfg = dict(cfg.get("model") or {})
    name = model_cfg.pop("name", None)
    if not name:
        raise WeightsError("weights= needs the architecture the file was saved from: pass model=<name>, e.g. "
                           "model=wrn28_10, model=preact_resnet18, model=cifar_resnet18 or "
                           "model=timm model.arch=<timm name> (all of them: docs/models.md)")
    if not cfg.get("data"):
        raise WeightsError("weights= needs the data set to evaluate on: pass data=<name>, e.g. data=cifar10")
    load = {k: model_cfg.pop(k, None) for k in LOAD_KEYS}
    if load["checkpoint_path"] or load["pretrained"]:
        raise WeightsError("with weights=<file> leave model.checkpoint_path and model.pretrained unset")
    seed = int(cfg["seed"]) if cfg.get("seed") is not None else 0
    spec = eval_spec(cfg, seed)
    data_cfg = dict(cfg["data"])
    data_cfg["seed"] = seed if data_cfg.get("seed") is None else data_cfg["seed"]
    datamodule = make_datamodule(data_cfg, int(data_cfg["seed"]))
    data = data_info(datamodule, data_cfg["name"])
    weights = read_weights(path, cfg.get("weights_format") or "auto", cfg.get("weights_prefix") or None)
    model, info = build_with_weights(
        name, weights, data["num_classes"], data["in_chans"], data["image_size"], mean=load["mean"], std=load["std"],
        normalize=load["normalize"] is not False, strict=load["strict"] is not False, data_mean=data["mean"],
        data_std=data["std"], data_name=data["name"], weights_num_classes=load["num_classes"], **model_cfg)
    info["model"] = {"name": name, **model_cfg}
    epoch = int(cfg["epoch"]) if cfg.get("epoch") is not None else 0
    attack = data_cfg.get("attack") or getattr(datamodule, "attack", None)
    return Source(model.to(device), datamodule, attack, epoch, seed, f"{name} {Path(path).name}", info), spec


def report_loading(info: dict) -> None:
    """Print how the model was loaded: its normalisation and anything that did not fit."""
    norm = info.get("normalization") or {}
    print(f"normalisation: mean={fmt_list(norm.get('mean'))} std={fmt_list(norm.get('std'))} "
          f"(from {norm.get('source')})")
    for note in info.get("notes", []):
        print(f"weights: {note}")
    for kind in ("missing", "unexpected", "skipped"):
        if info.get(kind):
            print(f"warning: model.strict=false: {len(info[kind])} {kind} keys, e.g. {', '.join(info[kind][:5])}")
    if info.get("head_replaced"):
        print(f"warning: the head ({info['head_replaced']}) was replaced by an untrained one with the data's classes: "
              "predictions and accuracy are those of a random head")


def fmt_list(values) -> str:
    return "none" if values is None else "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


# ---------------------------------------------------------------------------------- evaluation
def eval_spec(cfg: dict, run_seed: int) -> EvalSpec:
    explain = dict(cfg.get("explain") or {})
    if not explain.pop("enabled", True):
        raise ValueError("explain=none evaluates nothing: pass explain=default (or another explain config)")
    spec = parse_spec(explain, seed=run_seed).with_split(cfg.get("split"))
    return with_accuracy(spec)


def with_accuracy(spec: EvalSpec) -> EvalSpec:
    """Clean accuracy on the subset is always reported (one forward pass)."""
    if "clean_accuracy" in spec.metrics:
        return spec
    return replace(spec, metrics={"clean_accuracy": {}, **spec.metrics})


def eval_examples(datamodule, n: int, split: str, subset: str = "stratified"):
    """``(x, y, index)``: the fixed stratified subset, or (``first_n``) the first ``n`` examples of the
    split in order, as RobustBench reports clean and robust accuracy."""
    if subset == "stratified":
        return datamodule.eval_subset(n, split=split)
    if subset != "first_n":
        raise ValueError(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    dataset = datamodule.split(split)
    if n > len(dataset):
        warnings.warn(f"subset=first_n asks for {n} examples but the {split} split has {len(dataset)}; using all",
                      stacklevel=2)
        n = len(dataset)
    xs, ys = zip(*(dataset[i] for i in range(n)))
    return torch.stack(xs), torch.stack([torch.as_tensor(y) for y in ys]).to(torch.int64), torch.arange(n)


def evaluate_checkpoint(cfg: DictConfig | dict) -> dict:
    """Evaluate ``cfg.ckpt_path`` (rxlit) or ``cfg.weights`` (any other file, with ``cfg.model``); write
    ``metrics.json``, ``metrics.md`` and ``saliency.png`` in ``cfg.output_dir``, print the table and
    log to the configured logger. Returns the JSON payload."""
    cfg = to_dict(cfg)
    ckpt, weights = cfg.get("ckpt_path"), cfg.get("weights")
    if ckpt and weights:
        raise CheckpointError("pass either ckpt_path= (a train.py checkpoint) or weights= (any other weights file), "
                              "not both")
    if not ckpt and not weights:
        raise CheckpointError("no checkpoint given: pass ckpt_path=checkpoints/<run name>/best.ckpt (a train.py "
                              "checkpoint) or model=<arch> weights=<file> data=<data set> (weights from elsewhere)")
    device = pick_device(cfg.get("device", "auto"))
    source, spec = checkpoint_source(cfg, ckpt, device) if ckpt else weights_source(cfg, weights, device)
    return run_evaluation(source, spec, cfg)


def run_evaluation(source: Source, spec: EvalSpec, cfg: dict) -> dict:
    """Evaluate ``source`` on its subset; write, print and log the results (see the module docstring)."""
    report_loading(source.info)
    subset_mode = cfg.get("subset") or "stratified"
    subset = eval_examples(source.datamodule, spec.n_examples, spec.split, subset_mode)
    print(f"evaluating {source.label}: {spec.n_tasks()} method x metric tasks on {int(subset[0].shape[0])} "
          f"{spec.split} examples", flush=True)
    with EvalProgress(spec.n_tasks(), "eval", enabled=spec.progress) as progress:
        result = evaluate_subset(source.model, *subset, spec, source.epoch, attack=source.attack, progress=progress)
    payload = {**source.info, "epoch": source.epoch, "split": spec.split, "subset": subset_mode,
               "seed": spec.seed, "n_examples": int(subset[0].shape[0]), "time_s": result.time_s,
               "scalars": result.scalars(), "metrics": nested(result.summaries), "summaries": result.summaries}
    out = Path(cfg.get("output_dir") or ".")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(payload, indent=2, default=float))
    title = f"{source.label}: {spec.split}, {payload['n_examples']} examples"
    (out / "metrics.md").write_text(markdown(result.summaries, title=title) + loading_note(source.info))
    if cfg.get("save_logits"):
        save_logits(source.model, subset, out / "logits.pt")
    print_tables(result, title)
    grid = draw_grid(source.model, subset, spec, result, class_names=getattr(source.datamodule, "class_names", None))
    if grid is not None:
        save_png(grid, out / "saliency.png")
    log_result(cfg, result, grid, source.label, out, source.info)
    print(f"results: {out.resolve()} (metrics.json, metrics.md, saliency.png)")
    return payload


def loading_note(info: dict) -> str:
    norm = info.get("normalization")
    if not norm:
        return ""
    return (f"Normalisation: mean {fmt_list(norm.get('mean'))}, std {fmt_list(norm.get('std'))} "
            f"(from {norm.get('source')}).\n")


def save_logits(model: nn.Module, subset, path: Path) -> None:
    """``{"index", "y", "logits"}`` of the evaluated examples (eval mode, no gradients)."""
    x, y, index = subset
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(x.to(device)).cpu()
    finally:
        model.train(was_training)
    torch.save({"index": index.cpu(), "y": y.cpu(), "logits": logits}, path)


def draw_grid(model, subset, spec: EvalSpec, result: EvalResult, class_names=None):
    if spec.n_saliency_examples <= 0 or not spec.methods:
        return None
    x, y, maps = saliency_maps(model, *subset, spec, result.epoch)
    with torch.no_grad():
        was_training = model.training
        model.eval()
        pred = model(x).argmax(1)
        model.train(was_training)
    return saliency_grid(x, y, maps, title=f"epoch {result.epoch} ({result.split})", pred=pred,
                         class_names=class_names)


def print_tables(result: EvalResult, title: str) -> None:
    from rich.console import Console

    console = Console()
    for table in rich_tables(result.scalars(), title=title):
        console.print(table)


def log_result(cfg: dict, result: EvalResult, grid, run_name: str, out: Path, info: dict) -> None:
    """Scalars to the configured logger; to W&B also the results table and the saliency grid."""
    from rxlit.app.train import finish_wandb
    from rxlit.training.loggers import build_logger, record_evaluated_checkpoint

    logger = build_logger(cfg.get("logger") or {"name": "none"}, f"eval-{run_name.replace(' ', '-')}", out)
    if logger is None:
        return
    try:
        params = {k: v for k, v in cfg.items() if k != "hydra"}
        params["normalization"] = info.get("normalization")
        logger.log_hyperparams(params)
        if info.get("trained"):  # the training run, checkpoint and W&B artifact evaluated
            record_evaluated_checkpoint(logger, info["trained"])
        logger.log_metrics({k: float(v) for k, v in result.scalars().items()}, step=result.epoch)
        log_media([logger], grid, table_rows(result), result, step=result.epoch)
        logger.save()
    finally:
        logger.finalize("success")
        finish_wandb(logger)


# ------------------------------------------------------------------------------ library route
class TensorData:
    """Examples given as tensors: ``split`` and ``eval_subset`` over them, in order."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, torch.as_tensor(y).long()
        self.in_chans = int(x.shape[1])
        self.attack, self.class_names = None, None

    def split(self, _split: str):
        return list(zip(self.x, self.y))

    def eval_subset(self, n: int, split: str = "test"):
        n = min(int(n), len(self.x))
        return self.x[:n], self.y[:n], torch.arange(n)


def resolve_data(data, seed: int, data_options: dict | None):
    """A data module from a name (``configs/data``), a data module, or ``(x, y)`` tensors."""
    if isinstance(data, tuple | list):
        return TensorData(*data), None
    if isinstance(data, str):
        from rxlit.app.train import make_datamodule

        cfg = {**group_config("data", data, seed), **dict(data_options or {})}
        return make_datamodule(cfg, seed), cfg.get("attack")
    if hasattr(data, "eval_subset"):
        return data, getattr(data, "attack", None)
    raise ValueError("data must be a data set name (e.g. 'cifar10'), an rxlit data module, or a tuple (x, y) "
                     f"of [0, 1] images and labels; got {type(data).__name__}")


def resolve_spec(explain, seed: int, n_examples: int | None, split: str) -> EvalSpec:
    if isinstance(explain, EvalSpec):
        spec = explain
    else:
        cfg = group_config("explain", explain, seed) if isinstance(explain, str) else dict(explain)
        if not cfg.pop("enabled", True):
            raise ValueError("explain='none' evaluates nothing: pass 'default', 'full' or a config dict")
        spec = parse_spec(cfg, seed=seed)
    if n_examples is not None:
        spec = replace(spec, n_examples=int(n_examples))
    return with_accuracy(spec.with_split(split))


def evaluate_model(model: nn.Module, data="digits", *, mean=None, std=None, explain="default",
                   n_examples: int | None = None, split: str = "test", subset: str = "stratified", seed: int = 0,
                   epoch: int = 0, attack: dict | None = None, device: str | None = None,
                   output_dir: str | Path | None = None, logger: str = "none", data_options: dict | None = None,
                   name: str = "model") -> dict:
    """Evaluate an ``nn.Module`` in memory: see ``rxlit.evaluate``."""
    spec = resolve_spec(explain, seed, n_examples, split)
    datamodule, data_attack = resolve_data(data, seed, data_options)
    in_chans = getattr(datamodule, "in_chans", None) or None  # None: one per mean/std value
    net = model if mean is None and std is None else nn.Sequential(Normalize(mean, std, in_chans=in_chans), model)
    if mean is None and std is None:
        norm = {"mean": None, "std": None, "source": "none (model is given [0, 1] images; pass mean=/std= to "
                                                      "normalise in front of it)"}
    else:
        norm = {"mean": net[0].mean.tolist(), "std": net[0].std.tolist(), "source": "mean=/std= arguments"}
    target = pick_device(device)
    net = net.to(target)
    source = Source(net, datamodule, attack or data_attack, int(epoch), int(seed), name, {"normalization": norm})
    cfg = {"subset": subset, "output_dir": str(output_dir) if output_dir is not None else None,
           "logger": {"name": logger}}
    if output_dir is None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            return run_evaluation(source, spec, {**cfg, "output_dir": tmp})
    return run_evaluation(source, spec, cfg)
