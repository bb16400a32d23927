"""`babi-dnc train`: the DNC or the LSTM baseline on bAbI (see babi_dnc/babi_task.py and babi_dnc/train/)."""

from __future__ import annotations

import dataclasses
import statistics
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from babi_dnc.errors import EXIT_INTERRUPTED, UserError

from .common import console, plain, say, show_warnings


def train_command(
    model: Annotated[str | None, typer.Option("--model", help="dnc, or lstm (the LSTM baseline) (default: dnc)",
                     show_default=False)] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="paper (DNC1 / LSTM 512, RMSProp 1e-4), small "
                                               "(a CPU recipe, one task), joint (a CPU recipe, all tasks) or tiny "
                                               "(tests) (default: paper)", show_default=False)] = None,
    set_name: Annotated[str | None, typer.Option("--set", help="en-10k or en (default: en-10k)",
                        show_default=False)] = None,
    tasks: Annotated[str | None, typer.Option("--tasks", help="'all' or a list such as 1,2,5-7 (default: all)",
                     show_default=False)] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="tasks_1-20_v1-2 folder or .tar.gz "
                        "(default: $BABI_DNC_DATA, else the Hugging Face Hub).", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", help="run directory (default: runs/<model>-<preset>)",
                   show_default=False)] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="training steps (batches) "
                         "(default: the preset's)", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="stories per step, all "
                          "processes together (default: the preset's)", show_default=False)] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="seed of the first run (default: 0)",
                    show_default=False)] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="train K runs in OUT/seed-N (seed + N)")] = 1,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in OUT from its newest checkpoint "
                      "that loads (latest, else best) with its saved settings: training options given here replace "
                      "those; another value of a model or data option (--model, --set, --tasks, --memory-slots, "
                      "...) or of --seed is refused; an OUT that does not exist yet starts a fresh run")] = False,
    restart: Annotated[bool, typer.Option("--restart", help="delete the run in OUT and start over (the only way "
                       "to begin again in a folder that holds a run)")] = False,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda (default: auto)",
                      show_default=False)] = None,
    amp: Annotated[bool | None, typer.Option("--amp/--no-amp", help="bfloat16 autocast on CUDA",
                   show_default=False)] = None,
    compile: Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile the "
                             "DNC's time step (default: the preset's; on for small)", show_default=False)] = None,
    cuda_graphs: Annotated[bool | None, typer.Option("--cuda-graphs/--no-cuda-graphs", help="on a GPU, replay "
                           "whole training steps as CUDA graphs (default: on; eager where a graph cannot serve)",
                           show_default=False)] = None,
    eval_every: Annotated[int | None, typer.Option("--eval-every", min=1, help="validate every N steps "
                          "(default: the preset's)", show_default=False)] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="learning rate (default: the preset's)",
                  show_default=False)] = None,
    optimizer: Annotated[str | None, typer.Option("--optimizer", help="rmsprop, adam or sgd (default: "
                         "the preset's)", show_default=False)] = None,
    memory_slots: Annotated[int | None, typer.Option("--memory-slots", min=1, help="DNC: memory slots N "
                            "(default: the preset's)", show_default=False)] = None,
    word_size: Annotated[int | None, typer.Option("--word-size", min=1, help="DNC: memory word size W "
                         "(default: the preset's)", show_default=False)] = None,
    read_heads: Annotated[int | None, typer.Option("--read-heads", min=1, help="DNC: read heads R "
                          "(default: the preset's)", show_default=False)] = None,
    controller_size: Annotated[int | None, typer.Option("--controller-size", min=1, help="DNC: controller "
                               "units (default: the preset's)", show_default=False)] = None,
    lstm_size: Annotated[int | None, typer.Option("--lstm-size", min=1, help="LSTM baseline: units "
                         "(default: the preset's)", show_default=False)] = None,
    embedding: Annotated[int | None, typer.Option("--embedding", min=1, help="learned word embedding of "
                         "this size instead of the paper's one-hot input", show_default=False)] = None,
    bypass_dropout: Annotated[float | None, typer.Option(
        "--bypass-dropout", min=0.0, max=0.99, show_default=False,
        help="DNC: dropout on the controller's direct path to the output, so that answers must come "
        "through memory (Franke et al. 2018) (default: the preset's; 0 = the paper's DNC)")] = None,
    sharpness: Annotated[bool | None, typer.Option("--sharpness/--no-sharpness", help="DNC: sharpen the "
                         "temporal links' forward and backward weightings (Csordás & Schmidhuber 2019) "
                         "(default: the preset's; off = the paper's DNC)", show_default=False)] = None,
    interface_norm: Annotated[bool | None, typer.Option("--interface-norm/--no-interface-norm", help="DNC: layer "
                              "norm on the interface vector (Franke et al. 2018) (default: the preset's; off = the "
                              "paper's DNC)", show_default=False)] = None,
    links: Annotated[bool | None, typer.Option("--links/--no-links", help="DNC: the temporal link matrix; "
                     "--no-links reads memory by content only (Franke et al. 2018) (default: the preset's; on = "
                     "the paper's DNC)", show_default=False)] = None,
    think_steps: Annotated[int | None, typer.Option("--think-steps", min=0, help="empty input steps before "
                           "each question's answer, to read memory once more (default: the preset's; 0 = "
                           "none, the paper)", show_default=False)] = None,
    backward_reader: Annotated[int | None, typer.Option("--backward-reader", min=0, help="a backward LSTM of this "
                               "size over each question's part of the story, restarted at every question, joined "
                               "to the input (BiADNC's backward pass without reading past a question) (default: the "
                               "preset's; 0 = none, the paper)", show_default=False)] = None,
    reader_scope: Annotated[str | None, typer.Option("--reader-scope", help="what one pass of the backward "
                            "reader reads: question (restarted at every question, as chat can feed it) or story "
                            "(BiADNC's pass over the whole story, for comparison: answers see the sentences after "
                            "their question, so chat refuses the model) (default: question)",
                            show_default=False)] = None,
    clip_value: Annotated[float | None, typer.Option("--clip-value", min=0.001, help="DNC: clamp the "
                          "controller's and the DNC's outputs to [-V, V] (DeepMind's dnc clip_value, an ADNC "
                          "stabiliser) (default: the preset's; none = the paper's DNC)", show_default=False)] = None,
    clip_grad_norm: Annotated[float | None, typer.Option("--clip-norm", help="also clip the global gradient "
                         "norm to this", show_default=False)] = None,
    max_minutes: Annotated[float | None, typer.Option("--max-minutes", help="stop (and save) once the run "
                           "has trained this long, resumed sessions included; this counts as finished (exit "
                           "status 0) (default: the preset's)", show_default=False)] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads (1 is fastest on "
                       "a busy machine) (default: the preset's)", show_default=False)] = None,
    augment: Annotated[bool | None, typer.Option("--augment/--no-augment", help="rename the people, places "
                       "and other entities of each training story at random (default: the preset's; on for "
                       "small, off for paper)", show_default=False)] = None,
    task_sampling: Annotated[str | None, typer.Option("--task-sampling", help="uniform (every story once an "
                             "epoch), or error: rounds of 250 batches whose tasks are drawn by their latest "
                             "validation error (default: the preset's)", show_default=False)] = None,
    curriculum_tasks: Annotated[str | None, typer.Option("--curriculum-tasks", help="train on these tasks "
                                "alone first (e.g. 1), for --curriculum-steps steps, then on all of --tasks "
                                "(default: the preset's; none)", show_default=False)] = None,
    curriculum_steps: Annotated[int | None, typer.Option("--curriculum-steps", help="steps of training on "
                                "--curriculum-tasks alone (default: the preset's; 0 = no curriculum)",
                                show_default=False)] = None,
    fallback_1k: Annotated[bool | None, typer.Option("--fallback-1k/--no-fallback-1k", help="where an en-10k "
                           "training file is missing, train that task on the en (1k) one (default: off)",
                           show_default=False)] = None,
    augment_15: Annotated[bool | None, typer.Option("--augment-15/--no-augment-15", help="rewrite task 15's "
                          "training stories so that answering the most feared animal no longer pays; "
                          "validation and test stories stay as they are (default: off)", show_default=False)] = None,
    augment_16: Annotated[bool | None, typer.Option("--augment-16/--no-augment-16", help="rewrite task 16's "
                          "training stories so that answering the most common colour no longer pays (Franke "
                          "et al. 2018); validation and test stories stay as they are (default: off)",
                          show_default=False)] = None,
    valid_stories: Annotated[int | None, typer.Option("--eval-stories", min=1, help="validate on only the "
                            "first N validation stories of each task (quicker on a CPU)", show_default=False)] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="progress bar (warnings are shown "
                        "either way)")] = True,
) -> None:
    """Train the DNC or the LSTM baseline on bAbI (checkpoints, TensorBoard and metrics in OUT).

    One training writes OUT at a time (OUT/.lock). Exit status: 0 finished (all steps, or the --max-minutes
    limit reached), 2 an error to fix (nothing lost), 3 training diverged (the last good checkpoint is kept),
    75 stopped by SIGTERM, SIGHUP or SIGINT after saving (--resume continues).
    """
    given = {k: v for k, v in locals().items() if v is not None}  # each named as the setting it sets
    from babi_dnc.babi_task import TASK_PRESETS, TRAIN_PRESETS, BabiTaskConfig
    from babi_dnc.babi_train import train_babi
    from babi_dnc.config import flags
    from babi_dnc.data import local_data_path
    from babi_dnc.data.config import DataConfig
    from babi_dnc.models import PRESETS, ModelConfig
    from babi_dnc.models import preset as model_preset
    from babi_dnc.train import TrainConfig

    preset = preset or "paper"
    if preset not in PRESETS:
        raise UserError(f"--preset must be one of {', '.join(PRESETS)}, not {preset!r}.")
    if data_dir is not None:
        given["data_dir"] = str(local_data_path(data_dir))
    out = out or Path("runs") / f"{model or 'dnc'}-{preset}"

    def settings(cls) -> dict:
        return {k: given[k] for k in flags(cls) if k in given}

    model_config = model_preset(preset, **settings(ModelConfig))
    data_config = DataConfig(**settings(DataConfig))
    train_config = dataclasses.replace(TRAIN_PRESETS[preset], **settings(TrainConfig))
    task_config = dataclasses.replace(TASK_PRESETS[preset], **settings(BabiTaskConfig))
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.filterwarnings("ignore", message=".*torch.jit.script_method.*")  # torch's own, at import
        warnings.showwarning = show_warnings
        summaries = train_babi(model_config, data_config, train_config, out, seeds=seeds, resume=resume,
                               restart=restart, given=given, task_config=task_config)
    print_summaries(summaries, out, "" if resume else f", {preset} preset")
    if any(s["interrupted"] for s in summaries):
        raise typer.Exit(EXIT_INTERRUPTED)


def print_summaries(summaries: list[dict], out: Path, preset_text: str) -> None:
    """The table of the runs trained (and the mean over seeds), then what to do next."""
    from babi_dnc.checkpoint import read_config

    saved = read_config(summaries[0]["run_dir"])  # on --resume the run's own settings, not the options
    title = f"{saved['model']['model']} on bAbI {saved['data']['set_name']}, tasks {saved['data']['tasks']}"
    table = Table(title=plain(title + preset_text), title_justify="left")
    for column in ("run", "steps", "best val error", "at step", "last val error", "minutes"):
        table.add_column(column, justify="left" if column == "run" else "right", overflow="fold")
    for s in summaries:
        last, evaluated = s["metrics"].get("error"), s["best_step"] >= 0
        table.add_row(
            plain(s["run_dir"]), str(s["step"]), f"{s['best_error']:.2%}" if evaluated else "n/a",
            str(s["best_step"]) if evaluated else "n/a", f"{last:.2%}" if last is not None else "n/a",
            f"{s['elapsed_s'] / 60:.1f}",
        )
    console.print(table)
    best = [s["best_error"] for s in summaries if s["best_step"] >= 0]
    if len(best) > 1:
        say(f"best validation error over {len(best)} runs: {statistics.mean(best):.2%} ± {statistics.stdev(best):.2%}")
    if any(s["interrupted"] for s in summaries):
        say(f"stopped early: continue with `babi-dnc train --out {out} --resume`")
    else:
        say(f"test error: `babi-dnc eval {out}`")
