"""The bAbI metric (Weston et al. 2015, as Graves et al. 2016 report it), in one place.

- After every question a story holds one '-' answer slot per answer word; the target of every other step
  is IGNORE_INDEX, so the loss and the metric see the answer slots only.
- A question is right only if every one of its answer words is (`question_correct`, `answer_correct`).
- A task's error is the share of its questions that are wrong; a task whose error is above FAILED_ABOVE
  (5%) has failed (`task_errors`, `is_failed`); a run's error is the mean of its task errors (`summarize`).

Validation during training (`babi_task.evaluate_babi`), the test error of `babi-dnc eval`
(`eval/harness.py`) and the grading of `babi-dnc chat` all call these functions, so validation and test
error are the same computation on different stories.

    r = question_results(logits, batch)          # per question of a batch: task, story, question, correct
    errors = task_errors(r["task"], r["correct"])  # {task: TaskError(questions, wrong)}
    summarize(errors)["error"]                   # mean task error (a fraction)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

IGNORE_INDEX = -100  # target of the steps without an answer (cross_entropy's default ignore_index)
FAILED_ABOVE = 0.05  # a task with more question error than this has failed


def question_correct(wrong_word: Tensor, question: Tensor, questions: int) -> Tensor:
    """The rule: a question is right only if none of its answer words is wrong.

    wrong_word [K] bool (one entry per answer word), question [K] long (the question of each word, in
    0..questions-1). Returns [questions] bool; a question without answer words counts as right.
    """
    wrong = torch.zeros(questions, dtype=torch.long, device=wrong_word.device)
    return wrong.scatter_add_(0, question, wrong_word.long()) == 0


def answer_correct(predicted: Sequence[str], expected: Sequence[str]) -> bool:
    """The same rule for one question given as words (the chat): every answer word right, none missing."""
    return len(predicted) == len(expected) and all(p == e for p, e in zip(predicted, expected, strict=True))


def question_results(logits: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per question of a batch: is every answer word right? (One row per question, CPU tensors.)

    logits [B, T, V]; batch["targets"] [B, T], batch["question"] [B, T] (question index at answer steps,
    -1 elsewhere), batch["task"] [B] and batch["story"] [B], as `data.collate` makes them. Returns
    {"task", "story", "question", "correct", "row" (the story's row in the batch)}, each [Q], in the order
    (row, question).
    """
    targets, question = batch["targets"], batch["question"]
    answer = question >= 0  # [B, T]
    B = targets.shape[0]
    Q = int(question.max().item()) + 1 if answer.any() else 0  # questions per story, at most
    rows = torch.arange(B, device=targets.device).unsqueeze(1)  # [B, 1]
    index = (rows * Q + question)[answer]  # [K] the (row, question) of every answer word
    wrong_word = (logits.argmax(-1) != targets)[answer]  # [K]
    correct = question_correct(wrong_word, index, B * Q).view(B, Q)  # [B, Q]
    exists = torch.zeros(B * Q, dtype=torch.bool, device=targets.device).index_fill_(0, index, True).view(B, Q)
    rows, qs = rows.expand(B, Q), torch.arange(Q, device=targets.device).unsqueeze(0).expand(B, Q)
    return {
        "task": batch["task"].unsqueeze(1).expand(B, Q)[exists].cpu(),
        "story": batch["story"].unsqueeze(1).expand(B, Q)[exists].cpu(),
        "question": qs[exists].cpu(),
        "correct": correct[exists].cpu(),
        "row": rows[exists].cpu(),
    }


@dataclass(frozen=True)
class TaskError:
    """The questions of one task and how many of them were wrong."""

    questions: int
    wrong: int

    @property
    def error(self) -> float:
        """The share of wrong questions (a fraction; NaN without questions)."""
        return self.wrong / self.questions if self.questions else math.nan

    @property
    def failed(self) -> bool:
        return is_failed(self.error)


def is_failed(error: float) -> bool:
    """Has a task with this question error (a fraction) failed? (False for NaN.)"""
    return error > FAILED_ABOVE


def task_errors(tasks: Iterable[int] | Tensor, correct: Iterable[bool] | Tensor) -> dict[int, TaskError]:
    """Per task, sorted by task: its questions and the wrong ones, from one entry per question."""
    tasks = tasks.tolist() if isinstance(tasks, Tensor) else [int(t) for t in tasks]
    correct = correct.tolist() if isinstance(correct, Tensor) else [bool(c) for c in correct]
    total: dict[int, int] = {}
    wrong: dict[int, int] = {}
    for t, ok in zip(tasks, correct, strict=True):
        total[t] = total.get(t, 0) + 1
        wrong[t] = wrong.get(t, 0) + (not ok)
    return {t: TaskError(total[t], wrong[t]) for t in sorted(total)}


TASK_ERROR = "error_task_"  # key prefix of each task's error in the metrics: "error_task_T"


def summarize(errors: dict[int, TaskError]) -> dict[str, float]:
    """The validation metrics of `fit`: {"error": mean of the task errors, "error_task_T": each task's,
    "questions": n, "failed_tasks": tasks above FAILED_ABOVE, "tasks": number of tasks}."""
    metrics = {f"{TASK_ERROR}{t}": e.error for t, e in errors.items()}
    metrics["error"] = float(np.mean([e.error for e in errors.values()])) if errors else math.nan
    metrics["questions"] = float(sum(e.questions for e in errors.values()))
    metrics["failed_tasks"] = float(sum(e.failed for e in errors.values()))
    metrics["tasks"] = float(len(errors))
    return metrics


def per_task_errors(metrics: dict[str, float]) -> dict[int, float]:
    """The "error_task_T" entries of `summarize`'s metrics as {T: error}."""
    return {int(k.removeprefix(TASK_ERROR)): v for k, v in metrics.items() if k.startswith(TASK_ERROR)}


__all__ = [
    "IGNORE_INDEX", "FAILED_ABOVE", "TaskError", "question_correct", "answer_correct", "question_results",
    "task_errors", "is_failed", "summarize", "per_task_errors", "TASK_ERROR",
]
