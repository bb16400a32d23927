"""How a run answers the reasoning tasks on test, against each task's rule and the shortcuts it allows.

    python scripts/reasoning_answers.py pretrained:dnc --data-dir ../shared/data/babi/tasks_1-20_v1-2 \\
        [--tasks 15,16,17,19]

Task 15 (basic deduction): the test error, and how often the answer is the story's most feared animal (the
shortcut data/deduction.py describes) against how often that is the label. Task 16 (basic induction): the
same for the story's most common colour (data/induction.py). Task 17 (positional reasoning): the test error
and how often the answer is "yes", for each kind of question (data/positional.py): no fact, one fact or both
facts on the question's axis. Task 19 (path finding): the test error for each kind of path
(data/pathfinding.py), how often each step is right, and how often the answer is one direction twice.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
import torch

from babi_dnc.data import deduction, induction, load_babi, pathfinding, positional
from babi_dnc.runs import expand, load_run
from eval.harness import predict


def answers(run, task: int, data_dir: str) -> tuple[pd.DataFrame, list[dict]]:
    """The run's scored answers to the task's test questions, and the test story of each answer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # other tasks' missing files do not matter here
        test = load_babi("en-10k", [task], data_dir, vocab=run.vocab).test
    scored = predict(run.model, test, run.vocab)
    return scored, [test[int(row)] for row in scored["row"]]


def error(scored: pd.DataFrame) -> float:
    """Question error (%) of scored answers."""
    return 100 * (1 - scored["correct"].mean())


def shortcut_summary(task: int, shortcut_share, shortcut: str, scored: pd.DataFrame, stories: list[dict]) -> str:
    """The test error, and how often the shortcut (shortcut_share(answer, sentences)) gives the run's answer
    against how often it gives the label."""
    def share(words) -> float:  # how often `words` is the shortcut's answer, over all questions
        return float(np.mean([shortcut_share(w, s["sentences"]) for w, s in zip(words, stories, strict=True)]))

    return (f"task {task}: test error {error(scored):.1f}% over {len(scored)} questions; "
            f"its answer is {shortcut} {100 * share(scored['predicted']):.1f}% of the time "
            f"(the label: {100 * share(scored['expected']):.1f}%, a tie counted as a share)")


def deduction_summary(scored: pd.DataFrame, stories: list[dict]) -> str:
    return shortcut_summary(deduction.TASK, deduction.shortcut_share, "a most feared animal", scored, stories)


def induction_summary(scored: pd.DataFrame, stories: list[dict]) -> str:
    return shortcut_summary(induction.TASK, induction.shortcut_share, "a most common colour", scored, stories)


def positional_summary(scored: pd.DataFrame, stories: list[dict]) -> str:
    kind = pd.Series([positional.question_kind(s, int(q)) for s, q in zip(stories, scored["q"], strict=True)])
    lines = [f"task {positional.TASK}: test error {error(scored):.1f}% over {len(scored)} questions"]
    for name in positional.KINDS:
        part = scored[(kind == name).to_numpy()]
        lines.append(f"  {name}: {len(part)} questions, error {error(part):.1f}%, "
                     f"answers yes {100 * (part['predicted'] == 'yes').mean():.1f}% "
                     f"(the label: {100 * (part['expected'] == 'yes').mean():.1f}%)")
    return "\n".join(lines)


def pathfinding_summary(scored: pd.DataFrame, stories: list[dict]) -> str:
    predicted, expected = (scored[col].str.split(",") for col in ("predicted", "expected"))  # ["s", "e"] each
    right = [(predicted.str[i] == expected.str[i]).mean() for i in (0, 1)]
    twice = (predicted.str[0] == predicted.str[1]).to_numpy()
    kind = scored["expected"].map(pathfinding.path_kind).to_numpy()
    lines = [f"task {pathfinding.TASK}: test error {error(scored):.1f}% over {len(scored)} questions; first step "
             f"right {100 * right[0]:.1f}%, second step right {100 * right[1]:.1f}%"]
    for name in pathfinding.KINDS:
        part = kind == name
        lines.append(f"  {name}: {part.sum()} questions, error {error(scored[part]):.1f}%, answers one direction "
                     f"twice {100 * twice[part].mean():.1f}%")
    return "\n".join(lines)


SUMMARIES = {deduction.TASK: deduction_summary, induction.TASK: induction_summary,
             positional.TASK: positional_summary, pathfinding.TASK: pathfinding_summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder or pretrained:NAME")
    parser.add_argument("--data-dir", required=True, help="the bAbI folder (tasks_1-20_v1-2)")
    parser.add_argument("--tasks", default="15,16,17,19", help="which of tasks 15, 16, 17 and 19, e.g. 17")
    args = parser.parse_args()
    tasks = [int(t) for t in args.tasks.split(",")]
    if not set(tasks) <= set(SUMMARIES):
        raise SystemExit(f"--tasks takes some of 15, 16, 17 and 19, not {args.tasks!r}")
    torch.set_num_threads(1)
    run = load_run(expand(args.run)[0])
    print(args.run)
    for task in tasks:
        print(SUMMARIES[task](*answers(run, task, args.data_dir)))


if __name__ == "__main__":
    main()
