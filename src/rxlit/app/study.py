"""Running a reproduction study: train (or reuse) its models, evaluate them, write ``results.json``.

A study is a function ``run(ctx) -> dict`` registered in :data:`rxlit.analysis.study.STUDIES`; its
settings live in ``configs/experiment/<name>.yaml`` under ``study:``. The context built here gives it:

* ``ctx.model(key, seed)``: the trained network for one of ``study.models`` (``key: [overrides]``)
  and one of ``study.seeds`` (every model is trained once per seed: claims are decided across
  seeds), trained through :func:`rxlit.app.train.train` or reused from
  ``checkpoints/<run name>/`` when a checkpoint of the same training config exists. The run name
  ends in a hash of the resolved training config, so any change (epochs, eps, model, data, seed)
  trains a new model and the same model is shared between studies (the standard models of
  ``free_lunch`` serve the others). Every seed trains on the same data split
  (``data.seed = study.data_seed``), so the evaluation subset is held out for all of them.
* ``ctx.subset()``: a fixed stratified subset ``(x, y, index)`` of ``study.split``; metrics get
  ``seed=study.seed, index=index`` so every example's noise is keyed and reproducible, and every
  model is evaluated with the same draws (paired comparisons).

* ``ctx.evaluated(name, compute)``: ``compute()`` saved as ``evaluations/<name>.pt`` in the run folder
  as soon as it is done, so a study that stops (a crash, a time limit, Ctrl-C) loses no finished
  evaluation: ``study.resume=last`` (or a run folder) reuses every file whose fingerprint (the study
  settings, the command line's overrides and the source of rxlit) matches and computes the rest.

``results.json`` holds everything the report needs (tables, curves, scatters, claims, the
commands and the resolved configs); ``saliency.npz`` holds the arrays of saliency grids.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rxlit.analysis.study import load_studies
from rxlit.app.configs import compose, config_names, resolved, to_dict
from rxlit.app.train import make_datamodule, train
from rxlit.training.checkpoint import (
    TRAINING_KEYS,
    config_hash,
    find_diverged_run,
    find_finished_run,
    load_model,
)
from rxlit.training.divergence import NonFiniteLossError


def compose_train(overrides: list[str]) -> DictConfig:
    """Compose ``configs/train.yaml`` with ``overrides`` (inside a Hydra app or outside one)."""
    return compose(overrides, "train")


def study_settings(cfg: DictConfig | dict) -> dict:
    """``cfg.study`` as a dict; a null entry of a mapping (``study.models.spectral=null``, or in a
    ``debug=study`` file) removes that model, method, ..."""
    cfg = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    if "study" not in cfg or cfg.study is None or "name" not in cfg.study:
        raise ValueError("no study in the config: pass experiment=<name>, one of configs/experiment/*.yaml "
                         f"({', '.join(config_names('experiment'))})")
    study = to_dict(cfg.study)
    return {key: {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value
            for key, value in study.items()}


class ModelDiverged(RuntimeError):
    """A study model whose training the divergence check stopped: a result of its configuration
    (reported under ``diverged`` in ``results.json``), not an error of the study."""


class StudyContext:
    """What a study function needs: its settings, models, evaluation subset and run folder."""

    def __init__(self, cfg: DictConfig, overrides: list[str], run_dir: Path, command: str):
        self.cfg = cfg
        self.overrides = [o for o in overrides if not o.startswith(("hydra.", "paths.output_dir"))]
        self.study = study_settings(cfg)
        self.run_dir = Path(run_dir)
        self.command = command
        self.models_info: dict[str, dict] = {}
        self.diverged: dict[str, dict] = {}  # "key/sN" -> run name, error, command
        self._models: dict[str, torch.nn.Module] = {}
        self._subset = None
        self.seed = int(self.study.get("seed", cfg.get("seed", 0)))
        self.seeds = [int(v) for v in self.study.get("seeds") or [self.seed]]
        self.data_seed = int(self.study.get("data_seed", 0))
        self.device = torch.device(self.study.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.resume_dir = resume_dir(cfg, self.run_dir)
        self.fingerprint = evaluation_fingerprint(self.study, self.overrides)
        self.reused: list[str] = []

    # --- models ------------------------------------------------------------------------------
    def training_overrides(self, key: str, seed: int | None = None) -> list[str]:
        specs = self.study.get("models") or {}
        if key not in specs:
            raise KeyError(f"model {key!r} is not in study.models ({sorted(specs)})")
        seed = self.seeds[0] if seed is None else int(seed)
        return [*self.overrides, *(self.study.get("train") or []), *(specs[key] or []),
                f"seed={seed}", f"data.seed={self.data_seed}"]

    def model(self, key: str, seed: int | None = None) -> torch.nn.Module:
        """The trained model; :class:`ModelDiverged` when its training diverged."""
        seed = self.seeds[0] if seed is None else int(seed)
        if f"{key}/s{seed}" in self.diverged:
            raise ModelDiverged(self.diverged[f"{key}/s{seed}"]["error"])
        if (key, seed) not in self._models:
            self._models[key, seed] = self._train_or_reuse(key, seed)
        return self._models[key, seed]

    def seeds_of(self, key: str, required: bool = True) -> list[int]:
        """The seeds of ``key`` whose training did not diverge (the others are reported, not used);
        ``required``: refuse a model with none left, naming why."""
        kept = []
        for seed in self.seeds:
            try:
                self.model(key, seed)
            except ModelDiverged:
                continue
            kept.append(seed)
        if required and not kept:
            raise ModelDiverged(f"the training of every seed of study model {key!r} diverged, so the study has "
                                f"nothing to evaluate; first error: {self.diverged[f'{key}/s{self.seeds[0]}']['error']}")
        return kept

    def record_divergence(self, job: dict, error: str, run_name: str) -> None:
        self.diverged[f"{job['key']}/s{job['seed']}"] = {"run_name": run_name, "error": error,
                                                         "command": train_command(job["overrides"])}
        print(f"[study] {job['key']}/s{job['seed']}: training diverged ({error.split(':')[0]}); "
              "reported, left out of the claims", flush=True)

    def job(self, key: str, seed: int) -> dict:
        """How model ``key`` with ``seed`` is trained: the train.py overrides (ending in its run name,
        which ends in the config hash), the run name and the hash."""
        overrides = [*self.training_overrides(key, seed), *self.logging_overrides()]
        probe = to_train_dict(compose_train([*overrides, f"paths.output_dir={self.run_dir / 'models' / key}"]))
        digest = config_hash(probe)
        run_name = f"{probe['data']['name']}-{probe['model']['name']}-{key}-s{probe['seed']}-{digest}"
        return {"key": key, "seed": seed, "overrides": [*overrides, f"run_name={run_name}"], "run_name": run_name,
                "config_hash": digest, "checkpoints": probe["paths"]["checkpoints"],
                "config": {k: probe.get(k) for k in TRAINING_KEYS}}

    def logging_overrides(self) -> list[str]:
        """The runs of a study share a W&B group (``<study>-<data>-<model>``) and the tags study and <study>,
        unless the command line sets ``logger.group``."""
        logger = self.cfg.get("logger") or {}
        if logger.get("name") != "wandb":
            return []
        out = []
        if logger.get("group") is None:
            out.append(f"logger.group={self.study['name']}-{self.cfg.data.name}-{self.cfg.model.name}")
        tags = [*list(logger.get("tags") or []), "study", self.study["name"]]
        return [*out, f"logger.tags=[{','.join(dict.fromkeys(tags))}]"]

    def finished(self, job: dict) -> dict | None:
        """A finished run of this job's training config, if any (its run name, or any other run with
        the same config hash: a run made with train.py -m counts), as the study's model info."""
        index = find_finished_run(job["checkpoints"], job["config_hash"], prefer=job["run_name"])
        if index is not None:
            return {"run_name": index["run_name"], "checkpoint": index["best_checkpoint"] or index["last_checkpoint"],
                    "test": index.get("test", {}), "train_time_s": index.get("wall_time_s"),
                    "overrides": job["overrides"], "command": train_command(job["overrides"])}
        legacy = Path(job["checkpoints"]) / job["run_name"]  # studies before run.json existed
        if (legacy / "best.ckpt").is_file() and (legacy / "study_model.json").is_file():
            return json.loads((legacy / "study_model.json").read_text())
        return None

    def _train_or_reuse(self, key: str, seed: int) -> torch.nn.Module:
        job = self.job(key, seed)
        start = time.time()
        info = self.finished(job)
        diverged = None if info is not None else find_diverged_run(job["checkpoints"], job["config_hash"],
                                                                   prefer=job["run_name"])
        if diverged is not None:
            self.record_divergence(job, diverged["error"], diverged["run_name"])
            raise ModelDiverged(diverged["error"])
        if info is not None:
            info["reused"] = True
            print(f"[study] {key}/s{seed}: reusing {info['checkpoint']}", flush=True)
        else:
            print(f"[study] {key}/s{seed}: training {job['run_name']}", flush=True)
            try:
                report = train(compose_train([*job["overrides"], f"paths.output_dir={self.run_dir / 'models' / key}"]))
            except NonFiniteLossError as err:
                self.record_divergence(job, f"{err.__class__.__name__}: {err}", job["run_name"])
                raise ModelDiverged(str(err)) from None
            info = {"run_name": report["run_name"], "checkpoint": report["best_checkpoint"] or report["last_checkpoint"],
                    "test": report.get("test", {}), "train_time_s": report.get("wall_time_s"),
                    "overrides": job["overrides"], "command": train_command(job["overrides"]), "reused": False}
        info["load_time_s"] = round(time.time() - start, 2)
        info["config"] = job["config"]
        self.models_info[f"{key}/s{seed}"] = info
        model, _ = load_model(info["checkpoint"], device=self.device)
        return model

    def jobs(self) -> list[dict]:
        """Every (model, seed) the study needs: ``study.models`` x ``study.seeds``."""
        return [self.job(key, seed) for key in (self.study.get("models") or {}) for seed in self.seeds]

    # --- data --------------------------------------------------------------------------------
    def subset(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The fixed stratified evaluation subset ``(x, y, index)`` on the study's device."""
        if self._subset is None:
            cfg = to_dict(compose_train([*self.overrides, f"data.seed={self.data_seed}", "paths.output_dir=unused"]))
            dm = make_datamodule(cfg["data"], cfg["seed"])
            dm.setup("test")
            x, y, index = dm.eval_subset(int(self.study["n_examples"]), self.study.get("split", "test"))
            self._subset = (x.to(self.device), y.to(self.device), index)
        return self._subset

    def keyed(self) -> dict:
        """Keyword arguments that key a metric's noise by (study seed, example index)."""
        return {"seed": self.seed, "index": self.subset()[2]}

    # --- finished evaluations ------------------------------------------------------------------
    def evaluated(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` (tensors, numbers, strings, lists and dicts of them), saved to
        ``<run_dir>/evaluations/<name>.pt`` when done; with ``study.resume``, the resumed folder's
        file of the same name and fingerprint instead (its value is saved here too)."""
        name = re.sub(r"[^A-Za-z0-9._=-]+", "_", name)
        value = self._saved(name)
        if value is None:
            value = {"value": compute()}
        else:
            self.reused.append(name)
        save_atomic({"fingerprint": self.fingerprint, **value}, self.run_dir / "evaluations" / f"{name}.pt")
        return value["value"]

    def _saved(self, name: str) -> dict | None:
        if self.resume_dir is None:
            return None
        path = self.resume_dir / "evaluations" / f"{name}.pt"
        if not path.exists():
            return None
        try:
            saved = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as err:  # a file cut short: compute it again
            print(f"[study] {path} unreadable ({err.__class__.__name__}); evaluating again", flush=True)
            return None
        if saved.get("fingerprint") != self.fingerprint:
            print(f"[study] {path}: other settings or code; evaluating again", flush=True)
            return None
        print(f"[study] {name}: reused from {path}", flush=True)
        return {"value": saved["value"]}


def save_atomic(obj, path: Path) -> None:
    """``torch.save`` through a temporary file, so a crash never leaves half a file under ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def source_digest() -> str:
    """A hash of rxlit's Python source: evaluations saved by other code are not reused."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def evaluation_fingerprint(study: dict, overrides: list[str]) -> str:
    """What decides a study's evaluations: its settings (less where it writes and what it resumes),
    the command line's overrides (less ``study.resume``) and the source of rxlit."""
    settings = {k: v for k, v in study.items() if k not in ("resume", "output_root")}
    overrides = [o for o in overrides if not o.lstrip("+~").startswith("study.resume")]
    text = json.dumps({"settings": settings, "overrides": overrides, "source": source_digest()},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resume_dir(cfg: DictConfig, run_dir: Path) -> Path | None:
    """The run folder ``study.resume`` names: null (none), ``last`` (the newest other run folder of
    this study, data and model that holds evaluations) or a path; a missing folder is an error."""
    resume = study_settings(cfg).get("resume")
    if resume in (None, ""):
        return None
    if str(resume) == "last":
        root = study_run_dir(cfg, "x").parent
        runs = sorted(d for d in root.glob("*") if (d / "evaluations").is_dir() and d.resolve() != run_dir.resolve())
        if not runs:
            raise FileNotFoundError(f"study.resume=last: no earlier run of this study under {root} saved any "
                                    "evaluation; drop study.resume to start afresh")
        return runs[-1]
    path = Path(str(resume))
    if not (path / "evaluations").is_dir():
        raise FileNotFoundError(f"study.resume={resume}: {path / 'evaluations'} does not exist; give the run folder "
                                "of an earlier run of this study (outputs/studies/<study>-<data>-<model>/<time>), "
                                "study.resume=last, or drop study.resume")
    return path


def diverged_table(diverged: dict) -> dict:
    """The models whose training diverged: reported beside the results they are missing from."""
    return {"title": "Models whose training diverged (the divergence check stopped them; left out of every "
                     "table and claim above)",
            "columns": ["model/seed", "run", "why"],
            "rows": [[key, info["run_name"], info["error"].split(". Fix:")[0][:400]] for key, info in diverged.items()]}


def to_train_dict(cfg) -> dict:
    return to_dict(cfg)


def train_command(overrides: list[str]) -> str:
    return "python scripts/train.py " + " ".join(shlex.quote(o) for o in overrides)


def study_run_dir(cfg: DictConfig, stamp: str) -> Path:
    """``<study.output_root>/<study>-<data>-<model>/<stamp>`` (default root ``outputs/studies``)."""
    study = study_settings(cfg)
    root = Path(study.get("output_root") or "outputs/studies")
    return root / f"{study['name']}-{cfg.data.name}-{cfg.model.name}" / stamp


def run_study(cfg: DictConfig, overrides: list[str], run_dir: str | Path, command: str | None = None) -> Path:
    """Run the study of ``cfg`` (composed with ``overrides``) and write ``<run_dir>/results.json``."""
    studies = load_studies()
    torch.manual_seed(int(cfg.get("seed", 0)))
    command = command or "python scripts/study.py " + " ".join(shlex.quote(o) for o in overrides)
    ctx = StudyContext(cfg, overrides, Path(run_dir), command)
    name = ctx.study["name"]
    if name not in studies:
        raise ValueError(f"unknown study {name!r}; valid: {sorted(studies)}")
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    try:
        out = studies[name](ctx)
    except BaseException:
        if (ctx.run_dir / "evaluations").is_dir():
            print(f"[study] stopped; its finished evaluations are in {ctx.run_dir / 'evaluations'}: rerun the same "
                  f"command with study.resume={ctx.run_dir} (or study.resume=last) to reuse them", flush=True)
        raise
    if ctx.diverged:
        out.setdefault("tables", []).append(diverged_table(ctx.diverged))
    out.setdefault("summary", inspect.getdoc(sys.modules[studies[name].__module__]) or "")
    saliency = out.pop("saliency_arrays", {})
    if saliency:
        np.savez_compressed(ctx.run_dir / "saliency.npz", **saliency)
    results = {
        "study": name, "command": command, "overrides": overrides, "argv": sys.argv,
        "settings": ctx.study, "config": resolved(cfg),
        "data": str(cfg.data.name), "model_name": str(cfg.model.name),
        "models": ctx.models_info, "diverged": ctx.diverged,
        "resumed_from": None if ctx.resume_dir is None else str(ctx.resume_dir), "reused_evaluations": ctx.reused, "device": str(ctx.device), "torch": torch.__version__,
        "wall_time_s": round(time.time() - start, 1), **out,
    }
    path = ctx.run_dir / "results.json"
    path.write_text(json.dumps(results, indent=1, default=to_jsonable))
    print(f"[study] {name}: {results['wall_time_s']} s, results in {path}", flush=True)
    return path


def to_jsonable(value: Any):
    if isinstance(value, torch.Tensor | np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
