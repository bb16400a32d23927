"""`babi-dnc eval` and `babi-dnc viz`: test error against the published numbers, memory plots (see eval/)."""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from .common import ProgressLines, console, err_console, plain, print_error, print_warning, say


def _eval_config(split: str, data_dir: Path | None, checkpoint: str, device: str, batch_size: int = 64,
                 tasks: str | None = None):
    from babi_dnc.data import parse_task_spec
    from eval.harness import EvalConfig

    return EvalConfig(split=split, data_dir=data_dir, checkpoint=checkpoint, device=device, batch_size=batch_size,
                      tasks=parse_task_spec(tasks) if tasks else None)


@contextlib.contextmanager
def _progress(split: str, runs: int):
    """progress(label, done, total) of an evaluation's stories: a rich bar per run on a terminal; plain lines
    in a log or a pipe, so that a long evaluation is never silent there."""
    if not err_console.is_terminal:
        say(f"evaluating {runs} run{'s' if runs > 1 else ''} on the {split} split (each loads its data first)",
            stderr=True)
        lines = ProgressLines("stories")
        yield lambda label, done, total: lines(f"{label} ({split})", done, total)
        return
    with Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        bars: dict[str, int] = {}

        def progress(label: str, done: int, total: int) -> None:
            if label not in bars:
                bars[label] = bar.add_task(f"{label} ({split})", total=total)
            bar.update(bars[label], completed=done)

        yield progress


def eval_command(
    runs: Annotated[list[str], typer.Argument(help="Run directories written by `train`; a folder of seed-N "
                    "runs counts as all its seeds; pretrained:dnc and pretrained:lstm are the shipped models.",
                    show_default=False)],
    split: Annotated[str, typer.Option("--split", help="test, or valid (the held-out training stories).")] = "test",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="tasks_1-20_v1-2 folder or .tar.gz "
                        "(default: the one in each run's config, else $BABI_DNC_DATA, else the Hub).",
                        show_default=False)] = None,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="best (lowest validation error) or latest.")]
    = "best",
    report: Annotated[Path | None, typer.Option("--report", help="Write report.md, report.html, results.csv, "
                      "questions.csv and plots to DIR.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the per-task results as JSON (nothing else "
                       "on stdout).")] = False,
    tasks: Annotated[str | None, typer.Option("--tasks", help="Only these of the runs' tasks, e.g. 1,2,5-7.",
                     show_default=False)] = None,
    story_tasks: Annotated[str | None, typer.Option("--story-tasks", help="Tasks whose memory plots go into "
                           "the report (default: the first four).", show_default=False)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Stories per batch.")] = 64,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Test error per task of trained runs, next to each other and to the published numbers."""
    from babi_dnc.checkpoint import ensure_folder
    from babi_dnc.data import parse_task_spec
    from eval import report as reports
    from eval.aggregate import compare
    from eval.harness import evaluate_runs

    config = _eval_config(split, data_dir, checkpoint, device, batch_size, tasks)
    if report is not None:
        ensure_folder(report, "--report")  # before the evaluation, not after it
    with _progress(split, len(runs)) as progress:
        results, failures = evaluate_runs(runs, config, on_error=lambda path, message: print_error(message),
                                          progress=progress)
    if not results:
        if as_json:
            print(json.dumps({"runs": [], "errors": [{"run": str(p), "message": m} for p, m in failures]}, indent=2))
        raise typer.Exit(2)
    for r in results:
        for note in r.notes:
            print_warning(f"{r.label}: {note}")
    comparison = compare(results)
    if as_json:
        print(json.dumps(reports.to_json(comparison, failures), indent=2))
    else:
        console.print(reports.console_table(comparison))
    if report is not None:
        say(f"writing the report to {report} (tables, plots, a memory plot per story task)", stderr=True)
        command = shlex.join(["babi-dnc", *sys.argv[1:]])
        paths = reports.write_report(comparison, report, reports.provenance(comparison, command),
                                     story_tasks=parse_task_spec(story_tasks) if story_tasks else None)
        say(f"report: {paths['report.html']} (and report.md, results.csv, questions.csv, plots/)", stderr=as_json)
    if failures:
        print_error(f"{len(failures)} run{'s' if len(failures) > 1 else ''} could not be evaluated (see above); "
                    "the table shows the others.")
        raise typer.Exit(2)


def viz_command(
    run: Annotated[str, typer.Argument(help="A DNC run directory (of a folder of seeds: the first seed), or "
                   "pretrained:dnc.", show_default=False)],
    task: Annotated[int | None, typer.Option("--task", min=1, max=20, help="bAbI task (default: the run's "
                    "first).", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for the PNG (default: RUN/viz).",
                   show_default=False)] = None,
    story: Annotated[int | None, typer.Option("--story", min=0, help="Story id within the task's test file "
                     "(default: the first short one).", show_default=False)] = None,
    split: Annotated[str, typer.Option("--split", help="test or valid.")] = "test",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="tasks_1-20_v1-2 folder or .tar.gz "
                        "(default: the one in the run's config).", show_default=False)] = None,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="best or latest.")] = "best",
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Plot the DNC's memory over one story: write and read weightings, usage, gates, read modes, links."""
    from babi_dnc.pretrained import is_pretrained
    from babi_dnc.runs import expand
    from eval.memory_plots import answers_by_question, viz_run

    runs = expand(run)
    if out is None and is_pretrained(run):  # not into the installed package
        out = Path("viz")
    if len(runs) > 1:
        say(f"{run} holds {len(runs)} runs: plotting {runs[0]}.", stderr=True)
    info = viz_run(runs[0], task=task, out=out, eval_config=_eval_config(split, data_dir, checkpoint, device),
                   story_id=story)
    console.print(f"task {info['task']}, {split} story {info['story_id']} ({info['length']} words):", highlight=False)
    for a in answers_by_question(info):
        mark = plain("right", "green") if a["correct"] else plain(f"wrong (expected {a['expected']})", "red")
        console.print(Text.assemble(plain(f"  {a['question']} -> {a['predicted']}  "), mark), soft_wrap=True)
    say(f"memory plot: {info['path']}")
