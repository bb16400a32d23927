"""The progress of a run on the terminal: a rich progress bar, or plain lines when stderr is not a terminal;
and the notes (warnings, reloads, refused saves, resuming, stopping) that are shown even without progress."""

from __future__ import annotations

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from ..dnc import DNC
from ..errors import printable
from ..kernels import cpu_link_kernel_pending


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


def slow_start_note(model: torch.nn.Module, compiled: bool, device: torch.device) -> str | None:
    """A line for before the first training step where it is slow (the CPU link kernel's first load or
    build, torch.compile of the DNC's time step), so that a log does not fall silent; None where it is not."""
    if not any(isinstance(m, DNC) for m in model.modules()):
        return None
    work = []
    if device.type == "cpu" and cpu_link_kernel_pending():
        work.append("loads the CPU link kernel (building it, on a machine's first run, takes about 15 s or more)")
    if compiled:
        work.append("compiles the DNC's time step with torch.compile (about 1-2 minutes, more on a busy machine)")
    return f"the first step {' and '.join(work)}" if work else None
