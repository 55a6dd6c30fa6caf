"""Experiment loggers: W&B (offline unless the user is logged in), CSV, TensorBoard, none."""

from __future__ import annotations

import json
import netrc
import os
import socket
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch import Callback
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from rxlit.evaluation.keys import direction

LOGGERS = ("wandb", "csv", "tensorboard", "none")


def wandb_logged_in() -> bool:
    """True when an API key is available (env var or ~/.netrc), so an online run can start."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


WANDB_MODES = ("auto", "online", "offline", "disabled")
PROBE_TIMEOUT_S = 3.0


def wandb_mode(mode: str = "auto", fallback: str | None = None) -> str:
    """The W&B mode of a run; never one that would prompt or hang.

    'auto': WANDB_MODE if set, else online when logged in, else offline. An explicit mode wins over
    WANDB_MODE (said once when they differ). 'online' without credentials or without a reachable
    server fails at once with the fix, or becomes 'offline' when ``fallback='offline'``.
    """
    if mode not in WANDB_MODES:
        raise ValueError(f"logger.mode={mode!r} is not one of {', '.join(WANDB_MODES)}")
    if fallback not in (None, "offline"):
        raise ValueError(f"logger.fallback={fallback!r}: use null (fail) or offline")
    env = os.environ.get("WANDB_MODE")
    if mode == "auto":
        return env or ("online" if wandb_logged_in() else "offline")
    if env and env != mode:
        print(f"W&B: logger.mode={mode} (config) wins over WANDB_MODE={env} (environment)")
    if mode == "online":
        problem = online_problem()
        if problem and fallback == "offline":
            print(f"W&B: {problem}; logging offline instead (logger.fallback=offline); upload later with wandb sync")
            return "offline"
        if problem:
            raise ValueError(f"logger.mode=online but {problem}. Fix: run `wandb login` (or set WANDB_API_KEY), "
                             "or use logger.mode=offline and `wandb sync` later, or logger.fallback=offline")
    return mode


def online_problem() -> str | None:
    """Why an online W&B run cannot start now (no credentials, server unreachable), or None."""
    if not wandb_logged_in():
        return "no W&B credentials were found (WANDB_API_KEY, ~/.netrc)"
    url = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as err:
        return f"the W&B server {url.hostname}:{port} cannot be reached ({err.__class__.__name__})"
    return None


# W&B summaries: the best value in each metric's direction (and the last one), not just the last.
# Evaluation metrics declare theirs at registration (rxlit.evaluation.keys.direction).
TRAINING_DIRECTIONS = (("*/acc", "max"), ("*/adv_acc", "max"), ("*/loss", "min"))


def summary_direction(key: str) -> str | None:
    """'max' or 'min' for a metric with a better direction, None otherwise (times, ratios, media)."""
    found = direction(key)
    return found or next((way for pattern, way in TRAINING_DIRECTIONS if fnmatch(key, pattern)), None)


class RunWandbLogger(WandbLogger):
    """Lightning's W&B logger for a run that may be stopped and resumed.

    * The W&B run id lives in ``<checkpoint folder>/wandb.json``: a resumed or requeued run (same
      folder) continues the same W&B run, online or offline.
    * Each (metric, trainer step) is logged once: a resumed run repeats the part of an epoch that
      followed its checkpoint, and the values it logged already are not logged again. W&B's own step
      keeps increasing across the pieces, so offline pieces sync into one history.
    * ``define_metric`` summaries keep the best value in each metric's direction and the last value.
    """

    def __init__(self, *, state_file: str | Path | None = None, **kwargs):
        self._state_file = Path(state_file) if state_file else None
        self._state = read_state(self._state_file)
        if self._state.get("id"):
            kwargs.setdefault("id", self._state["id"])
            kwargs.setdefault("resume", "allow")
        super().__init__(**kwargs)
        self._defined: set[str] = set()
        self._started = False

    @rank_zero_only
    def log_metrics(self, metrics, step: int | None = None) -> None:
        logged = self._state.setdefault("logged", {})
        if step is not None:
            metrics = {k: v for k, v in metrics.items() if logged.get(k, -1) < step}
        if not metrics:
            return
        experiment = self.experiment
        if not self._started:  # after a resume W&B may know a later step than the state file
            self._state["id"] = experiment.id
            self._state["step"] = max(int(self._state.get("step", -1)), int(getattr(experiment, "step", 0)) - 1)
            self._started = True
        for key in metrics:
            self._define(key)
        row = dict(metrics) if step is None else {**metrics, "trainer/global_step": step}
        self._state["step"] = int(self._state.get("step", -1)) + 1
        experiment.log(row, step=self._state["step"], commit=True)  # written now, not when the next row comes
        if step is not None:
            logged.update(dict.fromkeys(metrics, step))
        write_state(self._state_file, self._state)

    def _define(self, key: str) -> None:
        if key in self._defined:
            return
        self._defined.add(key)
        way = summary_direction(key)
        if way is not None:
            self.experiment.define_metric(key, summary=f"{way},last", step_metric="trainer/global_step")

    @rank_zero_only
    def log_checkpoints(self, files: dict[str, str | Path], metadata: dict | None = None) -> str:
        """Each file as a version of the artifact ``model-<run id>`` with its alias (best, latest).
        Offline runs keep them with the run and upload them at ``wandb sync``."""
        import wandb

        for alias, path in files.items():
            if not path or not Path(path).is_file():
                continue
            artifact = wandb.Artifact(f"model-{self.experiment.id}", type="model",
                                      metadata={**(metadata or {}), "file": Path(path).name})
            artifact.add_file(str(path), name=Path(path).name)
            self.experiment.log_artifact(artifact, aliases=[alias])
        return f"model-{self.experiment.id}"


def record_evaluated_checkpoint(logger, origin: dict) -> None:
    """An evaluation run says which checkpoint it evaluated: in its W&B config and, online, as the
    artifact it used (the training run's ``model-<run id>:best``), which links the two runs in W&B."""
    if not isinstance(logger, WandbLogger):
        return
    logger.experiment.config.update({"evaluated_checkpoint": origin}, allow_val_change=True)
    if origin.get("artifact") and not logger._wandb_init.get("offline") and logger._wandb_init.get("mode") == "online":
        name = "/".join(p for p in (origin.get("wandb_project"), origin["artifact"]) if p)
        try:
            logger.experiment.use_artifact(name)
        except Exception as err:  # e.g. a training run logged offline and not synced yet
            print(f"W&B: could not link artifact {name} ({err.__class__.__name__}); recorded in the config")


class WandbRunRecord(Callback):
    """Writes the W&B run into every checkpoint (``checkpoint["wandb_run"]``), so an evaluation of the
    checkpoint can say which run and artifact it came from."""

    def __init__(self, logger: RunWandbLogger):
        self.logger = logger

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        run = self.logger._experiment
        if run is not None and getattr(run, "id", None):
            checkpoint["wandb_run"] = {"id": run.id, "project": self.logger._project,
                                       "entity": self.logger._wandb_init.get("entity"),
                                       "artifact": f"model-{run.id}"}


def read_state(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # a damaged state file: a new W&B run rather than a failed training run


def write_state(path: Path | None, state: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)  # never a half-written file, even if the process is killed here


FLUSH_INTERVAL_S = 2.0


def flush_often():
    """W&B settings that write the run's file every 2 s (W&B's default: 15 s). W&B's service stops
    with its process, so a killed run (SIGKILL, a node failure) loses what was not yet written."""
    import wandb

    try:
        return wandb.Settings(x_transaction_log_flush_interval=FLUSH_INTERVAL_S)
    except Exception:  # a W&B version without the setting: its default
        return wandb.Settings()


def build_logger(cfg: dict, run_name: str, save_dir: str | Path, state_dir: str | Path | None = None) -> Logger | None:
    """The configured logger. ``state_dir``: the run's checkpoint folder, where a W&B run keeps its
    id and what it logged (``wandb.json``), so that a resumed run continues it."""
    spec = dict(cfg)
    name = spec.pop("name")
    save_dir = str(save_dir)
    if name == "none":
        return None
    if name == "csv":
        return CSVLogger(save_dir=save_dir, name="csv", version="")
    if name == "tensorboard":
        return TensorBoardLogger(save_dir=save_dir, name="tensorboard", version="")
    if name == "wandb":
        mode = wandb_mode(spec.pop("mode", "auto"), spec.pop("fallback", None))
        spec.pop("log_checkpoints", None)  # read by train() at the end of the run
        logger = RunWandbLogger(name=run_name, save_dir=save_dir, project=spec.pop("project", "rxlit"),
                                entity=spec.pop("entity", None), tags=list(spec.pop("tags", []) or []),
                                group=spec.pop("group", None), offline=mode == "offline", mode=mode,
                                state_file=Path(state_dir) / "wandb.json" if state_dir else None,
                                settings=flush_often(), **spec)
        logger._wandb_init.pop("anonymous", None)  # Lightning passes a deprecated setting W&B warns about
        return logger
    raise ValueError(f"unknown logger {name!r}; valid: {', '.join(LOGGERS)}")
