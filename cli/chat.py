"""`babi-dnc chat`: tell a trained model a story and ask it questions (see babi_dnc/chat/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console


def chat_command(
    run: Annotated[str, typer.Argument(help="run directory written by `babi-dnc train` (or its seed-N), or "
                                       "pretrained:dnc / pretrained:lstm (the shipped models)")] = "pretrained:dnc",
    story: Annotated[Path | None, typer.Option("--story", help="feed this story file instead of asking: "
                     "bAbI format (line ids, tab-separated answers) or one sentence or question per line; "
                     "prints one answer per question and, with answers, the accuracy", show_default=False)] = None,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="best or latest")] = "best",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="bAbI for /example (default: "
                        "$BABI_DNC_DATA, else the run's data folder, else the Hugging Face Hub)",
                        show_default=False)] = None,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda")] = "cpu",
    seed: Annotated[int | None, typer.Option("--seed", help="seed of /example's story choice",
                    show_default=False)] = None,
) -> None:
    """Tell a trained model a story, line by line, and ask it questions (or feed a --story file)."""
    from babi_dnc.chat import ChatSession, chat_loop, print_story_file

    session = ChatSession.from_run(run, tag=checkpoint, device=device, data_dir=data_dir, seed=seed)
    if story is not None:
        print_story_file(session, story, console)
    else:
        chat_loop(session, console)
