"""What every command shares: the consoles, and the one printer of errors and warnings.

Messages are printed as plain text (no rich markup, no emoji codes, control characters escaped), so a
path or a data line shows exactly as it is: `file.txt:100:` stays a file and a line number, and '[/]'
in a path prints as itself.
"""

from __future__ import annotations

import functools
import os
import sys
import time

import typer
from rich.console import Console
from rich.text import Text

from babi_dnc.errors import EXIT_CTRL_C, EXIT_USER_ERROR, UserError, printable


def _width(stream) -> int | None:
    """A terminal's own width; for a file or a pipe (a log, `make run | tee`) 160 columns unless COLUMNS says
    otherwise, so that the per-task tables are not squeezed into rich's default of 80."""
    return None if stream.isatty() or "COLUMNS" in os.environ else 160


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))


def plain(text: str, style: str = "") -> Text:
    """`text` as rich Text, shown as it is (no markup, no emoji, control characters escaped)."""
    return Text(printable(str(text)), style=style)


def say(text: str, style: str = "", stderr: bool = False) -> None:
    """One line of plain text on stdout (or stderr)."""
    (err_console if stderr else console).print(plain(text, style), soft_wrap=True)


def print_error(message: str) -> None:
    """One red 'error:' line on stderr."""
    err_console.print(Text.assemble(("error: ", "bold red"), plain(message)), soft_wrap=True)


def print_warning(message: str) -> None:
    """One yellow 'warning:' line on stderr."""
    err_console.print(Text.assemble(("warning: ", "yellow"), plain(message)), soft_wrap=True)


PROGRESS_LINE_SECONDS = 20.0  # where no bar shows (a log, a pipe), a progress line at least this often


class ProgressLines:
    """Progress as plain lines on stderr, for a log or a pipe where a rich bar does not show: a line when an
    item starts, one every PROGRESS_LINE_SECONDS while it runs, and one when it is done."""

    def __init__(self, unit: str):
        self.unit, self.label, self.last = unit, None, 0.0

    def __call__(self, label: str, done: int, total: int) -> None:
        now = time.monotonic()
        if label != self.label:
            self.label, self.last = label, now
            say(f"{label}: {total:,} {self.unit}", stderr=True)
        if done >= total or now - self.last >= PROGRESS_LINE_SECONDS:
            self.last = now
            say(f"{label}: {done:,}/{total:,} {self.unit}" + (", done" if done >= total else ""), stderr=True)


def show_warnings(message, category, *args, **kwargs) -> None:
    """A warnings.showwarning that prints through print_warning."""
    print_warning(str(message))


def user_errors(fn):
    """Turn a UserError into one red sentence on stderr and its exit status (2; 3 for a failed training);
    likewise a file the system would not read or write (a full disk, a permission, a vanished folder:
    exit status 2), and Ctrl-C outside training, which saves and exits 75 itself (exit status 130)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            print_error(str(e))
            raise typer.Exit(e.exit_code) from None
        except OSError as e:
            where = f" {e.filename}" if e.filename else ""
            print_error(f"cannot read or write{where} ({e.strerror or e}): check the path, its permissions and the "
                        "free space; files already written are kept.")
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            print_error("interrupted.")
            raise typer.Exit(EXIT_CTRL_C) from None

    return wrapper
