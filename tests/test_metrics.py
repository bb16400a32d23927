"""The bAbI metric (babi_dnc/metrics.py): the rule, the threshold, and validation and test error as one
computation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from babi_dnc.babi_task import evaluate_babi
from babi_dnc.metrics import (
    FAILED_ABOVE,
    TaskError,
    answer_correct,
    is_failed,
    question_correct,
    summarize,
    task_errors,
)
from eval.harness import predict
from eval.harness import task_errors as task_table


def test_a_question_with_one_wrong_answer_word_is_wrong():
    wrong_word = torch.tensor([False, True, False, False, False])
    question = torch.tensor([0, 0, 1, 2, 2])  # question 0 has two words, one of them wrong
    assert question_correct(wrong_word, question, 4).tolist() == [False, True, True, True]  # 3: no words
    assert answer_correct(["apple", "milk"], ["apple", "milk"])
    assert not answer_correct(["apple", "football"], ["apple", "milk"])
    assert not answer_correct(["apple"], ["apple", "milk"])  # a missing word is a wrong one


def test_a_task_fails_above_five_percent():
    assert FAILED_ABOVE == 0.05
    assert not is_failed(0.05) and is_failed(0.0501) and not is_failed(math.nan)
    errors = task_errors([1, 1, 1, 8, 8], [True, False, True, True, True])
    assert errors == {1: TaskError(3, 1), 8: TaskError(2, 0)}
    metrics = summarize(errors)
    assert metrics["error"] == pytest.approx((1 / 3 + 0) / 2)
    assert (metrics["failed_tasks"], metrics["tasks"], metrics["questions"]) == (1, 2, 5)


class LastAnswerWord(nn.Module):
    """Answers every step with the last word of `answers` seen so far (the "last place mentioned" guess):
    right on part of task 1, and never on both words of a two-word task-8 answer."""

    def __init__(self, vocab_size: int, answers: list[int]):
        super().__init__()
        self.vocab_size = vocab_size
        self.register_buffer("answers", torch.tensor(answers))
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, ids, state=None, mask=None):
        B, T = ids.shape
        seen = torch.isin(ids, self.answers)  # [B, T]
        last = torch.where(seen, torch.arange(T).expand(B, T), torch.zeros(B, T, dtype=torch.long)).cummax(1).values
        return nn.functional.one_hot(ids.gather(1, last), self.vocab_size + 1)[..., : self.vocab_size].float(), None


def test_validation_and_test_error_come_from_one_computation(tiny_data):
    vocab = tiny_data.vocab
    answers = sorted({w for row in tiny_data.train for a in row["answers"] for w in a.split(",")})
    model = LastAnswerWord(vocab.size, vocab.encode(answers))
    valid = evaluate_babi(model, tiny_data.valid, batch_size=5)  # what fit logs as the validation error
    questions = predict(model, tiny_data.valid, vocab, batch_size=7)  # what `babi-dnc eval` scores
    table = task_table(questions)
    assert list(table.index) == [1, 8]
    for t in (1, 8):
        assert 0 < valid[f"error_task_{t}"] < 1  # neither all right nor all wrong: the comparison means something
        assert table.loc[t, "error"] == pytest.approx(100 * valid[f"error_task_{t}"], abs=1e-12)
    assert int(table["failed"].sum()) == valid["failed_tasks"] and len(questions) == valid["questions"]
    recount = questions["expected"] == questions["predicted"]  # every answer word right, from the strings
    assert (questions["correct"] == recount).all() and (~recount).any() and recount.any()


def test_per_task_errors_reads_back_what_summarize_writes():
    from babi_dnc.metrics import TaskError, per_task_errors, summarize

    errors = {1: TaskError(10, 1), 12: TaskError(4, 0)}
    assert per_task_errors(summarize(errors)) == {1: 0.1, 12: 0.0}
