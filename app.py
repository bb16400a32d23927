"""The `babi-dnc` command line: the Typer app, with one module per command in cli/.

Each command parses its options, calls the library and prints with rich. Errors a user can cause
(`babi_dnc.errors.UserError`) are printed as one sentence, without a traceback, and exit with code 2.
"""

from __future__ import annotations

import typer

from cli.bench import bench
from cli.chat import chat_command
from cli.common import handle_signals, ignore_signals, user_errors
from cli.copy import copy_command
from cli.data import data_command
from cli.evaluate import eval_command, viz_command
from cli.train import train_command

app = typer.Typer(
    name="babi-dnc",
    help="The Differentiable Neural Computer (Graves et al., Nature 2016) on the bAbI tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
COMMANDS = {"data": data_command, "copy": copy_command, "train": train_command, "eval": eval_command,
            "viz": viz_command, "chat": chat_command, "bench": bench}
for name, command in COMMANDS.items():
    app.command(name)(user_errors(command))


def main() -> None:
    handle_signals()
    try:
        app()
    finally:
        ignore_signals()


if __name__ == "__main__":
    main()
