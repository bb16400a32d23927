"""The `babi-dnc` command line: one small function per command.

Each command parses its options, calls the library and prints with rich. Errors a user can cause
(`babi_dnc.errors.UserError`) are printed as one sentence, without a traceback, and exit with code 2.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from babi_dnc.errors import UserError

app = typer.Typer(
    name="babi-dnc",
    help="The Differentiable Neural Computer (Graves et al., Nature 2016) on the bAbI tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def user_errors(fn):
    """Turn a UserError into one red sentence on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            err_console.print(f"[bold red]error:[/] {e}")
            raise typer.Exit(2) from None

    return wrapper


# ---------------------------------------------------------------------------------------------- data
# (command `data`: see babi_dnc/data.py)


# ---------------------------------------------------------------------------------------------- copy
# (command `copy`: see copytasks/)


# --------------------------------------------------------------------------------------------- train
# (command `train`: see babi_dnc/training.py)


# ---------------------------------------------------------------------------------------- eval, viz
# (commands `eval` and `viz`: see eval/)


# ---------------------------------------------------------------------------------------------- chat
# (command `chat`: see babi_dnc/chat.py)


# --------------------------------------------------------------------------------------------- bench
# (command `bench`: see babi_dnc/bench.py)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
