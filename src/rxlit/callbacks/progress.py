"""A cheap progress indicator for the evaluation: one rich task advanced per (method, metric).

Only rank 0 in a terminal shows it. When Lightning's RichProgressBar is live its display is reused
(rich allows one live display at a time); otherwise a transient rich Progress is started. In a
non-terminal (CI, log files) nothing is printed.
"""

from __future__ import annotations

import sys


class EvalProgress:
    """Context manager; ``advance(label)`` after each unit of work."""

    def __init__(self, total: int, description: str, enabled: bool = True, trainer=None):
        self.total, self.description = total, description
        self.enabled = enabled and sys.stdout.isatty()
        self.trainer = trainer
        self.progress = None
        self.task = None
        self.owned = False

    def _lightning_progress(self):
        bar = getattr(self.trainer, "progress_bar_callback", None) if self.trainer is not None else None
        progress = getattr(bar, "progress", None)
        return progress if progress is not None and getattr(progress, "live", None) is not None else None

    def __enter__(self) -> EvalProgress:
        if not self.enabled:
            return self
        from rich.progress import Progress

        self.progress = self._lightning_progress()
        if self.progress is None:
            self.progress, self.owned = Progress(transient=True), True
            self.progress.start()
        self.task = self.progress.add_task(self.description, total=self.total)
        return self

    def advance(self, label: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=f"{self.description} {label}")

    def __exit__(self, *exc) -> None:
        if self.progress is None:
            return
        if self.owned:
            self.progress.stop()
        else:
            self.progress.remove_task(self.task)
        self.progress = None
