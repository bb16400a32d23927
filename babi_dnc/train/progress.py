"""The progress of a run on the terminal: a rich progress bar, or plain lines when stderr is not a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class ProgressDisplay:
    """A rich progress bar (epoch and step, loss, validation error, speed, ETA) on a terminal; plain
    lines on stderr otherwise; silent when disabled."""

    def __init__(self, enabled: bool, total: int, start: int, unit: str):
        self.console = Console(stderr=True)
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self.total, self.unit = total, unit
        self.fields = {"loss": "n/a", "val": "n/a", "speed": "", "extra": ""}
        self.progress = None
        if self.live:
            self.progress = Progress(
                TextColumn("[bold blue]train"),
                BarColumn(bar_width=30),
                MofNCompleteColumn(),
                TextColumn("{task.fields[extra]}"),
                TextColumn("loss [cyan]{task.fields[loss]}"),
                TextColumn("val [magenta]{task.fields[val]}"),
                TextColumn("{task.fields[speed]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task_id = self.progress.add_task("train", total=total, completed=start, **self.fields)
            self.progress.start()

    def update(self, step: int, **fields: str) -> None:
        self.fields.update(fields)
        if self.progress is not None:
            self.progress.update(self.task_id, completed=step, **self.fields)

    def line(self, text: str) -> None:
        """A message above the bar (or a plain line when there is no bar)."""
        if self.enabled:
            self.console.print(text, highlight=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
