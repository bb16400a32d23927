"""What every command shares: the consoles, and the one printer of errors and warnings.

Messages are printed as plain text (no rich markup, no emoji codes, control characters escaped), so a
path or a data line shows exactly as it is: `file.txt:100:` stays a file and a line number, and '[/]'
in a path prints as itself.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time

import typer
from rich.console import Console
from rich.text import Text

from babi_dnc.errors import (
    EXIT_CTRL_C,
    EXIT_HANGUP,
    EXIT_TERMINATED,
    EXIT_USER_ERROR,
    UserError,
    printable,
    silence,
    terminal_fds,
)


def _reopen_closed_streams() -> None:
    """A stdin, stdout or stderr the caller closed (`<&-`, `>&-`; Python then sets sys.stdin and the rest to
    None) becomes /dev/null: input ends at once, output is discarded, and no file opened later (a run's
    lock or log) takes the stream's number and receives what is printed."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if getattr(sys, name) is not None:
            continue
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        setattr(sys, name, open(fd, mode, encoding="utf-8", errors="replace", closefd=False))


_reopen_closed_streams()  # before the consoles below ask their streams whether they are terminals


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


class HangUp(BaseException):
    """SIGHUP (the terminal closed) outside training, which saves and exits 75 itself: the command ends
    like after Ctrl-C (its clean-ups run, a training's lock is released), with exit status 129."""


class Terminated(BaseException):
    """SIGTERM outside training (while a command starts, loads data or evaluates): the command ends like
    after Ctrl-C, its clean-ups run, with exit status 143."""


def handle_signals() -> None:
    """For the program's run (app.main): SIGHUP and SIGTERM end a command cleanly (HangUp, Terminated)
    instead of killing it; a training replaces both with its own handler, which saves first."""
    terminal = terminal_fds()

    def hang_up(signum, frame):
        silence(terminal)
        raise HangUp

    def terminate(signum, frame):
        raise Terminated

    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, hang_up)
    signal.signal(signal.SIGTERM, terminate)


def ignore_signals() -> None:
    """Once a command has ended: a further Ctrl-C or SIGHUP while the interpreter shuts down (torch's exit
    hooks) would only print a traceback after the command's last word."""
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)


def user_errors(fn):
    """Turn a UserError into one red sentence on stderr and its exit status (2; 3 for a failed training);
    likewise a file the system would not read or write (a full disk, a permission, a vanished folder:
    exit status 2), Ctrl-C outside training, which saves and exits 75 itself (exit status 130), and a
    SIGHUP outside training (HangUp, exit status 129) and SIGTERM outside training (Terminated, 143)."""

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
        except HangUp:
            print_error("stopped: the terminal hung up (SIGHUP).")
            raise typer.Exit(EXIT_HANGUP) from None
        except Terminated:
            print_error("stopped by SIGTERM: files already written are kept; run the command again to finish it.")
            raise typer.Exit(EXIT_TERMINATED) from None

    return wrapper
