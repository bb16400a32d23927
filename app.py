"""The `babi-dnc` command line: one small function per command.

Each command parses its options, calls the library and prints with rich. Errors a user can cause
(`babi_dnc.errors.UserError`) are printed as one sentence, without a traceback, and exit with code 2.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated

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
# (command `data`: see babi_dnc/data/)


@app.command("data")
@user_errors
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
    import json
    import warnings

    from babi_dnc.data import TASK_NAMES, data_stats, format_task_spec, load_babi, task_file

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_babi(set_name=set_name, tasks=tasks, data_dir=data_dir)
        info = data_stats(loaded)
    for w in caught:
        err_console.print(f"[yellow]warning:[/] {w.message}", highlight=False)
    if as_json:
        print(json.dumps(info, indent=2))
        return

    from rich import box
    from rich.table import Table

    source = info["source"]
    if stats:
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
    else:
        totals = ", ".join(f"{split} {t['stories']:,} stories / {t['questions']:,} questions"
                           for split, t in info["totals"].items())
        console.print(f"bAbI {info['set']}, tasks {format_task_spec(info['tasks'])}: {totals}", highlight=False)
    console.print(f"vocabulary: {info['vocab_size']} symbols (unknown words get id {info['unk_id']})",
                  highlight=False)
    revision = f" @ {source['revision'][:12]}" if source.get("revision") else ""
    console.print(f"source: {source['kind']} {source['path']}{revision}", highlight=False)
    console.print(f"sha256 ({source.get('sha256_of', 'archive')}): {info['sha256']}", highlight=False)
    if info["missing"]:
        console.print(f"[yellow]missing files:[/] {', '.join(info['missing'])}", highlight=False)
    else:
        console.print("missing files: none", highlight=False)
    if not stats:
        console.print("(--stats for counts per task and split, --json for all of it as JSON)", style="dim")


# ---------------------------------------------------------------------------------------------- copy
# (command `copy`: see copytasks/)


@app.command("copy")
@user_errors
def copy_command(
    task: Annotated[str, typer.Option("--task", help="copy or repeat-copy.")] = "copy",
    controller: Annotated[str | None, typer.Option("--controller", help="ff or lstm (default: ff for copy, "
                          "lstm for repeat-copy)", show_default=False)] = None,
    controller_size: Annotated[int | None, typer.Option("--controller-size", min=1, help="controller units "
                               "(default: 64)", show_default=False)] = None,
    memory_slots: Annotated[int | None, typer.Option("--memory-slots", min=1, help="memory slots N "
                            "(default: 16)", show_default=False)] = None,
    word_size: Annotated[int | None, typer.Option("--word-size", min=1, help="memory word size W "
                         "(default: 16)", show_default=False)] = None,
    read_heads: Annotated[int | None, typer.Option("--read-heads", min=1, help="read heads R (default: 1 "
                          "for copy, 2 for repeat-copy)", show_default=False)] = None,
    bits: Annotated[int | None, typer.Option("--bits", min=1, help="bits per pattern vector (default: 6)",
                    show_default=False)] = None,
    max_length: Annotated[int | None, typer.Option("--max-length", min=1, help="longest pattern (default: "
                          "10 for copy, 3 for repeat-copy)", show_default=False)] = None,
    max_repeats: Annotated[int | None, typer.Option("--max-repeats", min=1, help="most repeats, "
                           "repeat-copy (default: 3)", show_default=False)] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="training steps (default: 2500 "
                         "for copy, 4000 for repeat-copy)", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="sequences per step "
                          "(default: 16 for copy, 32 for repeat-copy)", show_default=False)] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Adam learning rate (default: 1e-3 for "
                  "copy; 1e-2 with a cosine decay for repeat-copy)",
                  show_default=False)] = None,
    curriculum: Annotated[bool, typer.Option("--curriculum/--no-curriculum", help="start short with one "
                          "repeat and grow when the bit errors are low; or train on the full range at once")]
    = True,
    eval_every: Annotated[int | None, typer.Option("--eval-every", min=1, help="evaluate (and maybe advance "
                          "the curriculum) every N steps (default: 50)", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="seed of the weights and the sequences")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="run directory (default: runs/<task>)",
                   show_default=False)] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto")] = "cpu",
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads (default: 1)",
                       show_default=False)] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="progress bar")] = True,
) -> None:
    """Train the DNC on copy or repeat-copy (checkpoints, metrics, TensorBoard and memory plots in OUT)."""
    import dataclasses

    from copytasks.train import CopyConfig, train_copy

    config = CopyConfig.for_task(task)
    config.out = str(out or config.out)
    model = {"controller": controller, "controller_size": controller_size, "memory_slots": memory_slots,
             "word_size": word_size, "read_heads": read_heads}  # fmt: skip
    config.model = dataclasses.replace(config.model, **{k: v for k, v in model.items() if v is not None})
    data = {"bits": bits, "max_length": max_length, "max_repeats": max_repeats}
    config.task = dataclasses.replace(config.task, **{k: v for k, v in data.items() if v is not None})
    config.curriculum.enabled = curriculum
    train = {"max_steps": max_steps, "batch_size": batch_size, "lr": lr, "eval_every": eval_every,
             "threads": threads}  # fmt: skip
    config.train = dataclasses.replace(config.train, seed=seed, device=device, progress=progress,
                                       **{k: v for k, v in train.items() if v is not None})  # fmt: skip
    if config.model.memory_slots < config.task.max_length + 1:
        err_console.print(f"[yellow]warning:[/] {config.model.memory_slots} memory slots for patterns of up "
                          f"to {config.task.max_length} vectors: the DNC may run out of memory.")  # fmt: skip
    summary = train_copy(config)

    from rich.table import Table

    m = summary["metrics"]
    c = config.task
    table = Table(title=f"DNC ({config.model.controller}) on {c.task}, patterns of {c.min_length}-{c.max_length} "
                  f"x {c.bits} bits" + (f", 1-{c.max_repeats} repeats" if c.task == "repeat-copy" else ""),
                  title_justify="left")  # fmt: skip
    for column in ("steps", "bit errors/seq", "perfect", "best", "at step", "curriculum level", "minutes"):
        table.add_column(column, justify="right")
    table.add_row(str(summary["step"]), f"{m.get('error', float('nan')):.3f}", f"{m.get('perfect', 0):.0%}",
                  f"{summary['best_error']:.3f}", str(summary["best_step"]), summary["curriculum"],
                  f"{summary['elapsed_s'] / 60:.1f}")  # fmt: skip
    console.print(table)
    console.print(f"run: {config.out} (metrics.jsonl, tb/, checkpoints/)", highlight=False, soft_wrap=True)
    for path in summary.get("plots", []):
        console.print(f"plot: {path}", highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------------------------- train
# (command `train`: see babi_dnc/babi_task.py and babi_dnc/train/)


@app.command("train")
@user_errors
def train_command(
    model: Annotated[str, typer.Option("--model", help="dnc, or lstm (the LSTM baseline).")] = "dnc",
    preset: Annotated[str, typer.Option("--preset", help="paper (DNC1 / LSTM 512, RMSProp 1e-4), small "
                                        "(a CPU recipe, one task), joint (a CPU recipe, all tasks) or tiny "
                                        "(tests).")] = "paper",
    set_name: Annotated[str, typer.Option("--set", help="en-10k or en.")] = "en-10k",
    tasks: Annotated[str, typer.Option("--tasks", help="'all' or a list such as 1,2,5-7.")] = "all",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="tasks_1-20_v1-2 folder or .tar.gz "
                        "(default: $BABI_DNC_DATA, else the Hugging Face Hub).", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", help="run directory (default: runs/<model>-<preset>)",
                   show_default=False)] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="training steps (batches) "
                         "(default: the preset's)", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="stories per step, all "
                          "processes together (default: the preset's)", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="seed of the first run")] = 0,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="train K runs in OUT/seed-N (seed + N)")] = 1,
    resume: Annotated[bool, typer.Option("--resume", help="continue OUT from its latest checkpoint (its "
                      "saved model and data settings win; a missing run starts fresh)")] = False,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda (default: auto)",
                      show_default=False)] = None,
    amp: Annotated[bool | None, typer.Option("--amp/--no-amp", help="bfloat16 autocast on CUDA",
                   show_default=False)] = None,
    compile_model: Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile the "
                             "DNC's time step (default: the preset's; on for small)", show_default=False)] = None,
    eval_every: Annotated[int | None, typer.Option("--eval-every", min=1, help="validate every N steps "
                          "(default: the preset's)", show_default=False)] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="learning rate (default: the preset's)",
                  show_default=False)] = None,
    optimizer: Annotated[str | None, typer.Option("--optimizer", help="rmsprop, adam or sgd (default: "
                         "the preset's)", show_default=False)] = None,
    embedding: Annotated[int | None, typer.Option("--embedding", min=1, help="learned word embedding of "
                         "this size instead of the paper's one-hot input", show_default=False)] = None,
    clip_norm: Annotated[float | None, typer.Option("--clip-norm", help="also clip the global gradient "
                         "norm to this", show_default=False)] = None,
    max_minutes: Annotated[float | None, typer.Option("--max-minutes", help="stop (and save) once the run "
                           "has trained this long, resumed sessions included (default: the preset's)",
                           show_default=False)] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads (1 is fastest on "
                       "a busy machine) (default: the preset's)", show_default=False)] = None,
    augment: Annotated[bool | None, typer.Option("--augment/--no-augment", help="rename the people, places "
                       "and other entities of each training story at random (default: the preset's; on for "
                       "small, off for paper)", show_default=False)] = None,
    eval_stories: Annotated[int | None, typer.Option("--eval-stories", min=1, help="validate on only the "
                            "first N validation stories of each task (quicker on a CPU)", show_default=False)] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="progress bar")] = True,
) -> None:
    """Train the DNC or the LSTM baseline on bAbI (checkpoints, TensorBoard and metrics in OUT)."""
    import dataclasses
    import statistics
    import warnings

    from babi_dnc.babi_task import TRAIN_PRESETS, DataConfig, train_babi
    from babi_dnc.models import MODELS, PRESETS
    from babi_dnc.models import preset as model_preset

    if model not in MODELS:
        raise UserError(f"--model must be one of {', '.join(MODELS)}, not {model!r}.")
    if preset not in PRESETS:
        raise UserError(f"--preset must be one of {', '.join(PRESETS)}, not {preset!r}.")
    out = out or Path("runs") / f"{model}-{preset}"
    overrides = {
        "max_steps": max_steps, "batch_size": batch_size, "device": device, "amp": amp, "compile": compile_model,
        "eval_every": eval_every, "lr": lr, "optimizer": optimizer, "clip_grad_norm": clip_norm,
        "max_minutes": max_minutes, "threads": threads, "augment": augment,
    }  # fmt: skip
    overrides = {k: v for k, v in overrides.items() if v is not None}
    train_config = dataclasses.replace(TRAIN_PRESETS[preset], seed=seed, progress=progress, **overrides)
    model_config = model_preset(preset, model=model, embedding=embedding)
    data_config = DataConfig(set_name=set_name, tasks=tasks, data_dir=str(data_dir.resolve()) if data_dir else None,
                             valid_stories=eval_stories)  # fmt: skip

    def show_warning(message, category, *args, **kwargs):
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.filterwarnings("ignore", message=".*torch.jit.script_method.*")  # torch's own, at import
        warnings.showwarning = show_warning
        summaries = train_babi(model_config, data_config, train_config, out, seeds=seeds, resume=resume,
                               train_overrides={**overrides, "progress": progress})  # fmt: skip

    from rich.table import Table

    from babi_dnc.checkpoint import read_config

    saved = read_config(summaries[0]["run_dir"])  # on --resume the run's own settings, not the options
    title = f"{saved['model']['model']} on bAbI {saved['data']['set_name']}, tasks {saved['data']['tasks']}"
    table = Table(title=title + ("" if resume else f", {preset} preset"), title_justify="left")
    for column in ("run", "steps", "best val error", "at step", "last val error", "minutes"):
        table.add_column(column, justify="left" if column == "run" else "right", overflow="fold")
    for s in summaries:
        last = s["metrics"].get("error")
        table.add_row(
            s["run_dir"], str(s["step"]), f"{s['best_error']:.2%}" if s["best_step"] >= 0 else "n/a",
            str(s["best_step"]), f"{last:.2%}" if last is not None else "n/a", f"{s['elapsed_s'] / 60:.1f}",
        )  # fmt: skip
    console.print(table)
    best = [s["best_error"] for s in summaries if s["best_step"] >= 0]
    if len(best) > 1:
        console.print(f"best validation error over {len(best)} runs: {statistics.mean(best):.2%} "
                      f"± {statistics.stdev(best):.2%}", highlight=False)  # fmt: skip
    if any(s["stopped"] for s in summaries):
        console.print(f"stopped early: continue with `babi-dnc train --out {out} --resume`", highlight=False)
    else:
        console.print(f"test error: `babi-dnc eval {out}`", highlight=False)


# ---------------------------------------------------------------------------------------- eval, viz
# (commands `eval` and `viz`: see eval/)


def _eval_config(split: str, data_dir: Path | None, checkpoint: str, device: str, batch_size: int = 64,
                 tasks: str | None = None):
    from babi_dnc.data import parse_task_spec
    from eval.harness import EvalConfig

    return EvalConfig(split=split, data_dir=data_dir, checkpoint=checkpoint, device=device, batch_size=batch_size,
                      tasks=parse_task_spec(tasks) if tasks else None)  # fmt: skip


@app.command("eval")
@user_errors
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
    import json
    import shlex

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from babi_dnc.data import parse_task_spec
    from eval import report as reports
    from eval.aggregate import compare
    from eval.harness import evaluate_runs

    config = _eval_config(split, data_dir, checkpoint, device, batch_size, tasks)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        bars: dict[str, int] = {}

        def progress(label: str, done: int, total: int) -> None:
            if label not in bars:
                bars[label] = bar.add_task(f"{label} ({split})", total=total)
            bar.update(bars[label], completed=done)

        def on_error(path: Path, message: str) -> None:
            err_console.print(f"[bold red]error:[/] {message}", highlight=False)

        results, failures = evaluate_runs(runs, config, on_error=on_error, progress=progress)
    if not results:
        if as_json:
            print(json.dumps({"runs": [], "errors": [{"run": str(p), "message": m} for p, m in failures]}, indent=2))
        raise typer.Exit(2)
    for r in results:
        for note in r.notes:
            err_console.print(f"[yellow]warning:[/] {r.label}: {note}", highlight=False)
    comparison = compare(results)
    if as_json:
        print(json.dumps(reports.to_json(comparison, failures), indent=2))
    else:
        console.print(reports.console_table(comparison))
    if report is not None:
        command = shlex.join(["babi-dnc", *sys.argv[1:]])
        paths = reports.write_report(comparison, report, reports.provenance(comparison, command),
                                     story_tasks=parse_task_spec(story_tasks) if story_tasks else None)
        (err_console if as_json else console).print(f"report: {paths['report.html']} (and report.md, "
                                                    "results.csv, questions.csv, plots/)", highlight=False)
    if failures:
        err_console.print(f"[bold red]{len(failures)} run{'s' if len(failures) > 1 else ''} could not be "
                          "evaluated[/] (see above); the table shows the others.", highlight=False)
        raise typer.Exit(2)


@app.command("viz")
@user_errors
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
    from eval.harness import expand_runs
    from eval.memory_plots import answers_by_question, viz_run

    runs = expand_runs(run)
    if out is None and is_pretrained(run):  # not into the installed package
        out = Path("viz")
    if len(runs) > 1:
        err_console.print(f"{run} holds {len(runs)} runs: plotting {runs[0]}.", highlight=False)
    info = viz_run(runs[0], task=task, out=out, eval_config=_eval_config(split, data_dir, checkpoint, device),
                   story_id=story)  # fmt: skip
    console.print(f"task {info['task']}, {split} story {info['story_id']} ({info['length']} words):", highlight=False)
    for a in answers_by_question(info):
        mark = "[green]right[/]" if a["correct"] else f"[red]wrong[/] (expected {a['expected']})"
        console.print(f"  {a['question']} -> {a['predicted']}  {mark}", highlight=False)
    console.print(f"memory plot: {info['path']}", highlight=False)


# ---------------------------------------------------------------------------------------------- chat
# (command `chat`: see babi_dnc/chat.py)


@app.command("chat")
@user_errors
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


# --------------------------------------------------------------------------------------------- bench
# (command `bench`: see babi_dnc/bench.py)


@app.command()
@user_errors
def bench(
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    model: Annotated[str, typer.Option(help="dnc or lstm")] = "dnc",
    preset: Annotated[str, typer.Option(help="paper, small, joint or tiny")] = "paper",
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    seq_len: Annotated[int, typer.Option(min=1)] = 100,
    steps: Annotated[int, typer.Option(min=1, help="timed steps (the median is reported)")] = 5,
    warmup: Annotated[int, typer.Option(min=0)] = 2,
    amp: Annotated[bool, typer.Option(help="bf16 autocast of the controller (CUDA)")] = False,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the DNC's time step")] = False,
    checkpoint_steps: Annotated[int | None, typer.Option(help="recompute memory per chunk of steps")] = None,
    cuda_graph: Annotated[bool, typer.Option("--cuda-graph", help="capture forward and backward as CUDA graphs")] = (
        False
    ),
    threads: Annotated[int | None, typer.Option(help="CPU threads")] = None,
    data: Annotated[bool, typer.Option("--data", help="time real bAbI batches from the bucketed loader")] = False,
    data_dir: Annotated[Path | None, typer.Option(help="local bAbI folder or .tar.gz (for --data)")] = None,
    vs_peer: Annotated[bool, typer.Option("--vs-peer", help="also time the PyPI `dnc` package")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
):
    """Time full training steps (forward, backward, optimizer) at a preset's sizes."""
    import json

    from rich.table import Table

    from babi_dnc.bench import BenchConfig, run_bench

    if model not in ("dnc", "lstm"):
        raise UserError(f"--model must be dnc or lstm, not {model!r}.")
    cfg = BenchConfig(
        model=model, preset=preset, device=device, batch_size=batch_size, seq_len=seq_len, steps=steps,
        warmup=warmup, amp=amp, compile=compile, checkpoint_steps=checkpoint_steps, threads=threads,
        cuda_graph=cuda_graph,
        data_dir=(str(data_dir) if data_dir else _data_dir_or_env()) if data else None,
    )  # fmt: skip
    if data and cfg.data_dir is None:
        raise UserError("--data needs bAbI files: pass --data-dir PATH or set BABI_DNC_DATA.")
    results = run_bench(cfg, vs_peer=vs_peer)
    if json_out:
        print(json.dumps(results, indent=2))
        return
    table = Table(title=f"training step, {preset} preset, batch {batch_size}" + ("" if data else f" x {seq_len} steps"))
    for col in ("model", "step s", "forward s", "backward s", "stories/s", "story-steps/s", "peak memory"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r["model"], f"{r['step_s']:.3f}", f"{r['forward_s']:.3f}", f"{r['backward_s']:.3f}",
            f"{r['stories_per_s']:.1f}", f"{r['story_steps_per_s']:,.0f}",
            f"{r['peak_memory_bytes'] / 2**30:.2f} GiB",
        )  # fmt: skip
    console.print(table)
    link = f", link: {results[0]['link']}" if "link" in results[0] else ""
    console.print(
        f"device: {results[0]['device_name']}, torch {results[0]['torch']}, {results[0]['threads']} threads{link}"
    )
    if vs_peer:
        peer = results[-1]
        console.print(
            f"ours vs peer: [bold]{peer['speedup_vs_peer']:.2f}x[/] story-steps/s, "
            f"[bold]{peer['memory_ratio_vs_peer']:.2f}x[/] peak memory"
        )


def _data_dir_or_env() -> str | None:
    import os

    return os.environ.get("BABI_DNC_DATA") or None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
