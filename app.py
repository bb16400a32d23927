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
                         "for copy, 8000 for repeat-copy)", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="sequences per step "
                          "(default: 16 for copy, 32 for repeat-copy)", show_default=False)] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Adam learning rate (default: 1e-3 for "
                  "copy, 3e-3 for repeat-copy)",
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
# (command `train`: see babi_dnc/training.py)


@app.command("train")
@user_errors
def train_command(
    model: Annotated[str, typer.Option("--model", help="dnc, or lstm (the LSTM baseline).")] = "dnc",
    preset: Annotated[str, typer.Option("--preset", help="paper (DNC1 / LSTM 512, RMSProp 1e-4), small "
                                        "(a CPU recipe) or tiny (tests).")] = "paper",
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
                             "model", show_default=False)] = None,
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
    max_minutes: Annotated[float | None, typer.Option("--max-minutes", help="stop (and save) after this "
                           "much training time", show_default=False)] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads (1 is fastest on "
                       "a busy machine) (default: the preset's)", show_default=False)] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="progress bar")] = True,
) -> None:
    """Train the DNC or the LSTM baseline on bAbI (checkpoints, TensorBoard and metrics in OUT)."""
    import dataclasses
    import statistics
    import warnings

    from babi_dnc.models import MODELS, PRESETS
    from babi_dnc.models import preset as model_preset
    from babi_dnc.training import TRAIN_PRESETS, DataConfig, train_babi

    if model not in MODELS:
        raise UserError(f"--model must be one of {', '.join(MODELS)}, not {model!r}.")
    if preset not in PRESETS:
        raise UserError(f"--preset must be one of {', '.join(PRESETS)}, not {preset!r}.")
    out = out or Path("runs") / f"{model}-{preset}"
    overrides = {
        "max_steps": max_steps, "batch_size": batch_size, "device": device, "amp": amp, "compile": compile_model,
        "eval_every": eval_every, "lr": lr, "optimizer": optimizer, "clip_grad_norm": clip_norm,
        "max_minutes": max_minutes, "threads": threads,
    }  # fmt: skip
    overrides = {k: v for k, v in overrides.items() if v is not None}
    train_config = dataclasses.replace(TRAIN_PRESETS[preset], seed=seed, progress=progress, **overrides)
    model_config = model_preset(preset, model=model, embedding=embedding)
    data_config = DataConfig(set_name=set_name, tasks=tasks, data_dir=str(data_dir.resolve()) if data_dir else None)

    def show_warning(message, category, *args, **kwargs):
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show_warning
        summaries = train_babi(model_config, data_config, train_config, out, seeds=seeds, resume=resume,
                               train_overrides={**overrides, "progress": progress})  # fmt: skip

    from rich.table import Table

    table = Table(title=f"{model} ({preset}) on bAbI {set_name}, tasks {tasks}", title_justify="left")
    for column in ("run", "steps", "best val error", "at step", "last val error", "minutes"):
        table.add_column(column, justify="left" if column == "run" else "right")
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


# ---------------------------------------------------------------------------------------------- chat
# (command `chat`: see babi_dnc/chat.py)


# --------------------------------------------------------------------------------------------- bench
# (command `bench`: see babi_dnc/bench.py)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
