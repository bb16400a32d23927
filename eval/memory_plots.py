"""The DNC's memory over one bAbI story: write and read weightings, usage, gates, read modes, links.

    info = viz_run("runs/dnc", task=2, out="viz/")    # `babi-dnc viz`: one PNG per call
    info = plot_story(model, dataset, vocab, task=2, path="story.png")   # for reports

The story's words label the time axis; an answer slot '-' is labelled with the model's answer
("→kitchen", with "✗ office" added when the right answer was "office").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from babi_dnc import viz
from babi_dnc.data import TASK_NAMES, Vocabulary, collate
from babi_dnc.errors import DataError, UserError
from babi_dnc.runs import load_run
from babi_dnc.train import resolve_device

from .harness import EvalConfig, load_split, run_label

MAX_STORY_LENGTH = 120  # prefer the first story of a task at most this long (in tokens) for plots
MAX_LABELLED_STEPS = 300  # up to this many steps, every word is written on the time axis


def pick_story(dataset, task: int, story_id: int | None = None, max_length: int = MAX_STORY_LENGTH) -> int:
    """The row of `dataset` to plot for `task`: story `story_id` if given, else the first story of the task
    with at most `max_length` tokens, else its shortest. DataError if the task has no stories."""
    table = dataset.select_columns(["task", "story_id", "length"]).with_format("arrow")[:]
    tasks, stories, lengths = (np.asarray(table.column(c).to_numpy()) for c in ("task", "story_id", "length"))
    rows = np.flatnonzero(tasks == task)
    if len(rows) == 0:
        raise DataError(f"task {task} has no stories in this split: pick one of the run's tasks with --task.")
    if story_id is not None:
        match = rows[stories[rows] == story_id]
        if len(match) == 0:
            raise DataError(f"task {task} has no story {story_id} in this split: pick a story id below "
                            f"{int(stories[rows].max()) + 1}.")
        return int(match[0])
    rows = rows[np.argsort(stories[rows], kind="stable")]
    short = rows[lengths[rows] <= max_length]
    return int(short[0]) if len(short) else int(rows[np.argmin(lengths[rows])])


@torch.no_grad()
def trace_story(model: torch.nn.Module, dataset, row: int, vocab: Vocabulary, device="cpu") -> dict:
    """Run the model over one story with the memory traced.

    Returns {"trace": {name: [1, T, ...]}, "tokens", "labels" (tokens with the answers at '-' slots),
    "expected", "predicted" (one word per '-' slot), "story": the dataset row}.
    """
    story = dataset[int(row)]
    batch = collate([story])
    if not model.has_memory:
        raise UserError("this model has no memory to plot (an LSTM baseline): pass a DNC run.")
    logits, _, trace = model.trace(batch["ids"].to(device), mask=batch["mask"].to(device))
    positions = list(story["answer_positions"])
    predicted = vocab.decode(logits[0, positions].argmax(-1).tolist())
    expected = list(story["answer_words"])
    labels = list(story["tokens"])
    for p, guess, truth in zip(positions, predicted, expected, strict=True):
        labels[p] = f"→{guess}" if guess == truth else f"→{guess} ✗ {truth}"
    return {"trace": trace, "tokens": list(story["tokens"]), "labels": labels, "expected": expected,
            "predicted": predicted, "story": story}


def label_every_step(fig, labels: list[str], max_steps: int = MAX_LABELLED_STEPS) -> None:
    """Label every time step of `fig`'s bottom panel with its word (plot_memory thins long label lists,
    which can hide answer slots); stories longer than `max_steps` keep the thinned labels."""
    if len(labels) > max_steps or not fig.axes:
        return
    top = fig.axes[0]
    panels = [ax for ax in fig.axes if top.get_shared_x_axes().joined(top, ax)]
    bottom = panels[-1]  # the panels were made top to bottom
    bottom.set_xticks(np.arange(len(labels)))
    bottom.set_xticklabels(labels, rotation=90, fontsize=6 if len(labels) <= 150 else 5)


def plot_story(model, dataset, vocab: Vocabulary, task: int, path: str | Path, title: str = "",
               story_id: int | None = None, device="cpu") -> dict:
    """Plot the memory over one story of `task` (see `pick_story`) to `path` (PNG).

    Returns {"path", "task", "story_id", "length", "expected", "predicted" (one word per answer slot),
    "questions", "answer_question" (the question of each answer slot)}.
    """
    row = pick_story(dataset, task, story_id)
    traced = trace_story(model, dataset, row, vocab, device)
    story = traced["story"]
    right = sum(p == e for p, e in zip(traced["predicted"], traced["expected"], strict=True))
    heading = (f"{title + ': ' if title else ''}task {task} ({TASK_NAMES[task]}), story {story['story_id']}, "
               f"{len(story['tokens'])} words; {right} of {len(traced['expected'])} answer words right")
    fig = viz.plot_memory(traced["trace"], sample=0, tokens=traced["labels"], title=heading)
    label_every_step(fig, traced["labels"])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return {"path": Path(path), "task": task, "story_id": int(story["story_id"]), "length": len(story["tokens"]),
            "expected": traced["expected"], "predicted": traced["predicted"], "questions": list(story["questions"]),
            "answer_question": list(story["answer_question"])}


def viz_run(run_dir: str | Path, task: int | None = None, out: str | Path | None = None,
            eval_config: EvalConfig | None = None, story_id: int | None = None) -> dict:
    """`babi-dnc viz`: the memory plot of one story of `task` (default: the run's first task) of a DNC run,
    saved as OUT/memory-<run>-task<T>-story<S>.png (OUT defaults to RUN/viz). Returns plot_story's dict."""
    eval_config = eval_config or EvalConfig()
    run_dir = Path(run_dir)
    device = resolve_device(eval_config.device)
    run = load_run(run_dir, tag=eval_config.checkpoint, device=device)
    if not run.model.has_memory:
        raise UserError(f"{run_dir} is an LSTM baseline, which has no memory to plot: pass a DNC run.")
    data, _ = load_split(run.data, run.vocab, eval_config)
    task = task if task is not None else data.tasks[0]
    if task not in data.tasks:
        raise DataError(f"{run_dir} was trained on tasks {', '.join(map(str, data.tasks))}, not task {task}: "
                        "pick one of those with --task.")
    dataset = data.test if eval_config.split == "test" else data.valid
    out = Path(out) if out is not None else run_dir / "viz"
    row = pick_story(dataset, task, story_id)
    name = run_label(run_dir).replace("/", "-")
    path = out / f"memory-{name}-task{task}-story{int(dataset[row]['story_id'])}.png"
    title = f"{run_label(run_dir)} (step {run.step})"
    return plot_story(run.model, dataset, run.vocab, task, path, title, int(dataset[row]["story_id"]), device)


def answers_by_question(info: dict) -> list[dict]:
    """plot_story's answer slots grouped per question: question, expected, predicted (words joined by ","),
    correct (every word right)."""
    out = []
    for q, question in enumerate(info["questions"]):
        slots = [i for i, a in enumerate(info["answer_question"]) if a == q]
        expected = [info["expected"][i] for i in slots]
        predicted = [info["predicted"][i] for i in slots]
        out.append({"question": question, "expected": ",".join(expected), "predicted": ",".join(predicted),
                    "correct": expected == predicted})
    return out
