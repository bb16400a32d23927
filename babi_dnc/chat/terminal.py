"""The chat on a terminal: the interactive loop, and a story file's answers with their grades. Text from
the user, a pipe or a file is printed as it is (no rich markup) with control characters escaped
(errors.printable), so escape sequences read from input never reach the terminal."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.text import Text

from ..errors import printable
from .commands import ChatSession
from .replies import Reply, format_top, verdict
from .stories import READ_LIMIT, StoryScore, capped_lines, shown_line, story_file_replies

STYLES = {"info": "", "rejected": "yellow", "quit": "dim", "answer": "", "fed": ""}


def render(console, reply: Reply, with_question: bool = False) -> None:
    """Print a reply with rich: answers in bold (green when right, red when wrong), refusals in yellow."""
    for item in reply.items:
        if isinstance(item, str):
            console.print(Text(printable(item), style=STYLES.get(reply.kind, "")), soft_wrap=True)
            continue
        good = {True: "bold green", False: "bold red", None: "bold"}[item.correct]
        line = Text(printable(f"{item.question}  ") if with_question else "")
        line.append("-> ", style="dim").append(printable(item.text), style=good)
        line.append(printable("   (" + "  |  ".join(format_top(t) for t in item.top) + ")"), style="dim")
        if verdict(item):
            line.append(f"  {verdict(item)}", style=good.replace("bold ", ""))
        console.print(line, soft_wrap=True)


def chat_loop(session: ChatSession, console, stdin=None) -> None:
    """The interactive loop: read a line, handle it, print the reply, until /quit, Ctrl-D or Ctrl-C.

    On a terminal the prompt is rich's (with readline editing and history); from a pipe or file, lines
    are read plainly and echoed as "> line" so the output reads as a transcript.
    """
    stdin = stdin or sys.stdin
    tty = stdin.isatty()
    if hasattr(stdin, "reconfigure"):
        stdin.reconfigure(errors="replace")  # undecodable bytes become U+FFFD: refused, not a traceback
    if tty:
        try:
            import readline  # noqa: F401  (line editing and history for input(); optional, and only a terminal needs it)
        except ImportError:
            pass
    console.print(Text(printable(session.banner()), style="dim"), soft_wrap=True)
    lines, limit = capped_lines(stdin), session.config.max_chars
    while True:
        try:
            if tty:
                reply = session.handle(console.input("[bold cyan]>[/] "))
            else:
                line, length = next(lines, (None, 0))
                if line is None:
                    raise EOFError
                console.print(Text(printable(f"> {shown_line(line, length, limit)}")), soft_wrap=True)
                reply = session.handle(line) if length <= READ_LIMIT else session.refuse_long_line(length)
        except (EOFError, KeyboardInterrupt):
            console.print("\nbye", style="dim")
            return
        except Exception as e:  # a bug: say so in one line and keep the session alive
            console.print(Text(printable(f"internal error ({type(e).__name__}: {e}); please report it"), style="red"))
            continue
        render(console, reply, with_question=False)
        if reply.quit:
            return


def print_story_file(session: ChatSession, path: str | Path, console) -> StoryScore:
    """Run a story file (see `story_file_replies`), print one answer per question with its grade and,
    at the end, the accuracy; returns the score."""
    score = StoryScore()
    for number, line, reply in story_file_replies(session, path):
        score.add(reply)
        if reply.kind == "rejected":
            shown = shown_line(line, len(line), session.config.max_chars)
            console.print(Text(printable(f"line {number}: {shown}\n  {reply.text}"), style="yellow"), soft_wrap=True)
        elif reply.kind == "answer":
            render(console, Reply("answer", reply.answers), with_question=True)
        elif reply.kind != "fed":
            render(console, reply)
    console.print(Text(score.summary(), style="bold"), soft_wrap=True)
    return score
