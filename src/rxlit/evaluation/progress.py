"""Progress of an explanation evaluation: one step per (method, metric), with an ETA.

Only rank 0 reports. In a terminal a rich bar is drawn and refreshed at every step (Lightning's
rich display does not refresh itself: it is redrawn only from Lightning's own hooks, so without the
explicit refresh the bar sat at 0/21 for the whole evaluation); when Lightning's RichProgressBar is
live its display is reused (rich allows one live display at a time). Outside a terminal (CI, log
files, ``scripts/eval.py | tee``) a plain line is printed at most every ``line_every_s`` seconds
and at the end. ``positions`` records every position reached, for tests.
"""

from __future__ import annotations

import sys
import time


class EvalProgress:
    """Context manager; ``advance(label)`` after each unit of work."""

    def __init__(self, total: int, description: str, enabled: bool = True, trainer=None,
                 line_every_s: float = 10.0, stream=None):
        self.total, self.description = total, description
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.trainer = trainer
        self.line_every_s = line_every_s
        self.progress = None
        self.task = None
        self.owned = False
        self.done = 0
        self.positions: list[int] = []
        self.start = self.last_line = 0.0

    def _lightning_progress(self):
        bar = getattr(self.trainer, "progress_bar_callback", None) if self.trainer is not None else None
        progress = getattr(bar, "progress", None)
        return progress if progress is not None and getattr(progress, "live", None) is not None else None

    def __enter__(self) -> EvalProgress:
        self.start = self.last_line = time.perf_counter()
        self.positions.append(0)
        if not self.enabled or not self.tty:
            return self
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = self._lightning_progress()
        if self.progress is None:
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("ETA"), TimeRemainingColumn(), transient=True)
            self.owned = True
            self.progress.start()
        self.task = self.progress.add_task(self.description, total=self.total)
        return self

    def eta_s(self) -> float | None:
        if self.done == 0:
            return None
        elapsed = time.perf_counter() - self.start
        return elapsed / self.done * (self.total - self.done)

    def advance(self, label: str) -> None:
        self.done += 1
        self.positions.append(self.done)
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=f"{self.description} {label}")
            self.progress.refresh()
        elif self.enabled and not self.tty:
            now = time.perf_counter()
            if now - self.last_line >= self.line_every_s or self.done == self.total:
                self.last_line = now
                eta = self.eta_s()
                print(f"{self.description}: {self.done}/{self.total} {label} ({now - self.start:.0f} s"
                      + (f", ETA {eta:.0f} s)" if eta is not None else ")"), file=self.stream, flush=True)

    def __exit__(self, *exc) -> None:
        if self.progress is None:
            return
        if self.owned:
            self.progress.stop()
        else:
            self.progress.remove_task(self.task)
            self.progress.refresh()
        self.progress = None
