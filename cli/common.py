"""What every command shares: the consoles, and user errors as one sentence with exit code 2."""

from __future__ import annotations

import functools

import typer
from rich.console import Console

from babi_dnc.errors import UserError

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
