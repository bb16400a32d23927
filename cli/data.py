"""`babi-dnc data`: load bAbI and report what is there (see babi_dnc/data/)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from .common import console, print_warning, say


def data_command(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="tasks_1-20_v1-2 folder, its parent or the .tar.gz "
                     "(default: $BABI_DNC_DATA, else the Hugging Face Hub).", show_default=False),
    ] = None,
    set_name: Annotated[str, typer.Option("--set", help="en-10k (10,000 training questions per task) or en.")]
    = "en-10k",
    tasks: Annotated[str, typer.Option("--tasks", help="'all' or a list such as 1,2,5-7.")] = "all",
    stats: Annotated[bool, typer.Option("--stats", help="Counts per task and split.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON (nothing else).")]
    = False,
) -> None:
    """Load bAbI and report what is there: counts per task and split, vocabulary, source, checksum."""
    from babi_dnc.data import data_stats, format_task_spec, load_babi

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_babi(set_name=set_name, tasks=tasks, data_dir=data_dir)
        info = data_stats(loaded)
    for w in caught:
        print_warning(str(w.message))
    if as_json:
        print(json.dumps(info, indent=2))
        return

    source = info["source"]
    if stats:
        print_stats(info)
    else:
        totals = ", ".join(f"{split} {t['stories']:,} stories / {t['questions']:,} questions"
                           for split, t in info["totals"].items())
        console.print(f"bAbI {info['set']}, tasks {format_task_spec(info['tasks'])}: {totals}", highlight=False)
    console.print(f"vocabulary: {info['vocab_size']} symbols (unknown words get id {info['unk_id']})",
                  highlight=False)
    revision = f" @ {source['revision'][:12]}" if source.get("revision") else ""
    say(f"source: {source['kind']} {source['path']}{revision}")
    console.print(f"sha256 ({source.get('sha256_of', 'archive')}): {info['sha256']}", highlight=False)
    if info["missing"]:
        say(f"missing files: {', '.join(info['missing'])}", style="yellow")
    else:
        console.print("missing files: none", highlight=False)
    if not stats:
        console.print("(--stats for counts per task and split, --json for all of it as JSON)", style="dim")


def print_stats(info: dict) -> None:
    """The stories, questions, longest story and answer words per task and split (data_stats' dict) as a
    table, then the questions per task file."""
    from babi_dnc.data import TASK_NAMES, format_task_spec, task_file

    table = Table(title=f"bAbI {info['set']}: stories per task and split", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False,
                  caption="longest: longest story in tokens, '-' slots included; "
                  "answer words: '-' slots (tasks 8 and 19 have answers of several words)",
                  caption_justify="left")
    table.add_column("task", justify="left", no_wrap=True)
    table.add_column("split", no_wrap=True, min_width=5)
    for header in ("stories", "questions", "longest", "answer words"):
        table.add_column(header, justify="right")
    missing = set(info["missing"])
    for task in info["tasks"]:
        rows = [r for r in info["rows"] if r["task"] == task]
        for i, r in enumerate(rows):
            file = task_file(info["set"], task, "test" if r["split"] == "test" else "train")
            counts = (["[red]missing[/]", "", "", ""] if file in missing else
                      [f"{r[k]:,}" for k in ("stories", "questions", "longest", "answer_words")])
            table.add_row(f"{task} {TASK_NAMES[task]}" if i == 0 else "", r["split"], *counts,
                          end_section=i == len(rows) - 1)
    for split, t in info["totals"].items():
        table.add_row("all", split, *(f"{t[k]:,}" for k in ("stories", "questions", "longest", "answer_words")),
                      style="bold")
    console.print(table)
    for split, label in (("train", "questions per training file (train + valid)"),
                         ("test", "questions per test file")):
        by_count: dict[int, list[int]] = {}
        for f in info["files"]:
            if f["split"] == split and f["present"]:
                by_count.setdefault(f["questions"], []).append(f["task"])
        parts = [f"{n:,} in task{'s' if len(ts) > 1 else ''} {format_task_spec(ts)}"
                 for n, ts in sorted(by_count.items(), reverse=True)]
        console.print(f"{label}: {'; '.join(parts) or 'none'}", highlight=False)
