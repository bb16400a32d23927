"""Errors a user can cause, the exit status of every command, text fit for a terminal, and output to a terminal
that hung up.

The CLI prints a UserError's message as one sentence, without a traceback, and exits with its
`exit_code`. The exit statuses (README, Commands):

    0   finished (all steps, solved, or the --max-minutes time limit reached)
    1   an internal error (a bug: Python's traceback)
    2   an error the user can fix (an option, the data, a run folder, a full disk): nothing was lost
    3   training failed: the non-finite guard gave up; the last good checkpoint is kept
    75  interrupted by SIGTERM, SIGHUP or SIGINT after saving: `--resume` continues (sysexits' EX_TEMPFAIL)
    129 SIGHUP (a closed terminal) in a command that has nothing to save: 128 + SIGHUP
    130 Ctrl-C in a command that has nothing to save (eval, chat, viz, data, bench): 128 + SIGINT
    143 SIGTERM in a command that has nothing to save, or before a training's first step: 128 + SIGTERM
"""

from __future__ import annotations

import contextlib
import os
import unicodedata

BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
EXIT_FINISHED, EXIT_USER_ERROR, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_HANGUP, EXIT_CTRL_C = 0, 2, 3, 75, 129, 130
EXIT_TERMINATED = 143


class UserError(Exception):
    """Base class: a problem the user can fix (bad option, missing file, broken checkpoint, ...).

    The message must be one clear sentence that says what to do.
    """

    exit_code = EXIT_USER_ERROR


class DataError(UserError):
    """Missing or malformed bAbI data."""


class CheckpointError(UserError):
    """A run directory or checkpoint that does not exist, does not load or cannot be written."""


class VocabularyError(UserError):
    """Words the model never saw, or a vocabulary that does not match the data."""


class TrainingDiverged(UserError):
    """The non-finite guard gave up: the loss stayed non-finite after its reloads (exit status 3)."""

    exit_code = EXIT_FAILED


def printable(text: str) -> str:
    """`text` with every control character but tab and newline, and the bidirectional overrides, shown as an
    escape (ESC as '\\x1b'), so that text from files, pipes or paths cannot move the cursor, recolour or
    retitle a terminal, or reorder what it shows."""
    return "".join(_escape(c) if _hidden(c) else c for c in text)


def _hidden(c: str) -> bool:
    return (c not in "\t\n" and unicodedata.category(c) == "Cc") or c in BIDI_CONTROLS


def _escape(c: str) -> str:
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_fds() -> list[int]:
    """Which of stdout and stderr are a terminal; asked before a hang-up, after which a terminal no longer says
    it is one."""
    return [fd for fd in (1, 2) if os.isatty(fd)]


def silence(fds: list[int]) -> None:
    """After SIGHUP: stdout and stderr that were the terminal, now gone, go to /dev/null, since every write to
    a hung-up terminal fails (EIO) and would end the command before it saves or cleans up."""
    for fd in fds:
        with contextlib.suppress(OSError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
