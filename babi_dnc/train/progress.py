"""The progress of a run on the terminal: a rich progress bar, or plain lines when stderr is not a terminal;
and the notes (warnings, reloads, refused saves, resuming, stopping) that are shown even without progress."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from ..errors import printable


class ProgressDisplay:
    """A rich progress bar (epoch and step, loss, validation error, speed, ETA) on a terminal; plain
    lines on stderr otherwise; without progress (`enabled` False) only the notes. Off process 0
    (`main` False) silent."""

    def __init__(self, enabled: bool, total: int, start: int, unit: str, main: bool = True):
        self.console = Console(stderr=True)
        self.main = main
        self.enabled = enabled and main
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

    def line(self, text: str | Text, style: str = "") -> None:
        """A progress message above the bar (or a plain line when there is no bar); not without progress."""
        if self.enabled:
            self._print(text, style)

    def note(self, text: str, style: str = "yellow") -> None:
        """A message the user must see (a warning, a reload, a refused save, where the run starts or stops):
        shown with or without progress."""
        if self.main:
            self._print(text, style)

    def _print(self, text: str | Text, style: str) -> None:
        shown = text if isinstance(text, Text) else Text(printable(text), style=style)
        self.console.print(shown, soft_wrap=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
