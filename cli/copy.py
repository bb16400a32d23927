"""`babi-dnc copy`: the copy and repeat-copy sanity tasks (see copytasks/)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from babi_dnc.errors import EXIT_INTERRUPTED

from .common import console, print_warning, say


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
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="progress bar (warnings are shown "
                        "either way)")] = True,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in OUT from its newest checkpoint")]
    = False,
    restart: Annotated[bool, typer.Option("--restart", help="delete the run in OUT and start over")] = False,
) -> None:
    """Train the DNC on copy or repeat-copy (checkpoints, metrics, TensorBoard and memory plots in OUT).

    Exit status as for `train`: 0 finished, 2 an error to fix, 3 diverged, 75 stopped by SIGTERM, SIGHUP or SIGINT.
    """
    from copytasks.train import CopyConfig, train_copy

    config = CopyConfig.for_task(task)
    config.out = str(out or config.out)
    model = {"controller": controller, "controller_size": controller_size, "memory_slots": memory_slots,
             "word_size": word_size, "read_heads": read_heads}
    config.model = dataclasses.replace(config.model, **{k: v for k, v in model.items() if v is not None})
    data = {"bits": bits, "max_length": max_length, "max_repeats": max_repeats}
    config.task = dataclasses.replace(config.task, **{k: v for k, v in data.items() if v is not None})
    config.curriculum.enabled = curriculum
    train = {"max_steps": max_steps, "batch_size": batch_size, "lr": lr, "eval_every": eval_every,
             "threads": threads}
    config.train = dataclasses.replace(config.train, seed=seed, device=device, progress=progress,
                                       **{k: v for k, v in train.items() if v is not None})
    if config.model.memory_slots < config.task.max_length + 1:
        print_warning(f"{config.model.memory_slots} memory slots for patterns of up to {config.task.max_length} "
                      "vectors: the DNC may run out of memory.")
    summary = train_copy(config, resume=resume, restart=restart)

    m = summary["metrics"]
    c = config.task
    table = Table(title=f"DNC ({config.model.controller}) on {c.task}, patterns of {c.min_length}-{c.max_length} "
                  f"x {c.bits} bits" + (f", 1-{c.max_repeats} repeats" if c.task == "repeat-copy" else ""),
                  title_justify="left")
    for column in ("steps", "bit errors/seq", "perfect", "best", "at step", "curriculum level", "minutes"):
        table.add_column(column, justify="right")
    table.add_row(str(summary["step"]), f"{m.get('error', float('nan')):.3f}", f"{m.get('perfect', 0):.0%}",
                  f"{summary['best_error']:.3f}", str(summary["best_step"]), summary["curriculum"],
                  f"{summary['elapsed_s'] / 60:.1f}")
    console.print(table)
    say(f"run: {config.out} (metrics.jsonl, tb/, checkpoints/)")
    for path in summary.get("plots", []):
        say(f"plot: {path}")
    if summary["interrupted"]:
        raise typer.Exit(EXIT_INTERRUPTED)
