"""Task 17's rule and question kinds (data/positional.py): hand-checked stories, and every real en-10k
task-17 label where the real files are found (conftest.REAL_BABI)."""

from __future__ import annotations

import collections

from babi_dnc.data import parse_babi_file
from babi_dnc.data.positional import KINDS, positional_answer, question_kind

from .conftest import REAL_BABI, needs_real_babi

# the first two stories of en-10k's training file, then one written here whose facts chain on one axis
STORIES = """\
1 The triangle is above the pink rectangle.
2 The blue square is to the left of the triangle.
3 Is the pink rectangle to the right of the blue square?\tyes\t1 2
4 Is the blue square below the pink rectangle?\tno\t2 1
1 The red sphere is to the left of the yellow square.
2 The red sphere is below the pink rectangle.
3 Is the pink rectangle to the right of the yellow square?\tno\t2 1
4 Is the yellow square to the right of the pink rectangle?\tyes\t1 2
1 The triangle is to the left of the red square.
2 The red square is to the left of the blue square.
3 Is the blue square to the right of the triangle?\tyes\t1 2
4 Is the triangle to the right of the blue square?\tno\t1 2
5 Is the triangle above the blue square?\tno\t1 2
"""


def test_the_rule_reads_every_answer_from_the_grid_the_facts_draw():
    for story in parse_babi_file(STORIES.encode()):
        assert [positional_answer(story, q) for q in range(len(story["questions"]))] == story["answers"]


def test_the_kind_counts_the_facts_on_the_question_axis():
    first, second, chained = parse_babi_file(STORIES.encode())
    # first story: the pink rectangle is under the triangle, the blue square left of it; one fact per axis
    assert question_kind(first, 0) == question_kind(first, 1) == "one fact on the axis"
    assert question_kind(second, 0) == "one fact on the axis"
    assert [question_kind(chained, q) for q in range(3)] == ["both facts on the axis", "both facts on the axis",
                                                             "no fact on the axis"]


def test_other_questions_have_no_answer_and_no_kind():
    story = {"sentences": ["Mary went to the kitchen."], "questions": ["Where is Mary?"], "question_after": [1]}
    assert positional_answer(story, 0) is None and question_kind(story, 0) is None
    unplaced = {"sentences": ["The triangle is above the red square."], "question_after": [1],
                "questions": ["Is the triangle above the blue square?"]}
    assert positional_answer(unplaced, 0) is None


@needs_real_babi
def test_every_real_task_17_label_follows_the_rule():
    kinds = collections.Counter()
    for split in ("train", "test"):
        for story in parse_babi_file(REAL_BABI / "en-10k" / f"qa17_positional-reasoning_{split}.txt"):
            for q, answer in enumerate(story["answers"]):
                assert positional_answer(story, q) == answer
                kinds[split, question_kind(story, q)] += 1
    assert [kinds["test", k] for k in KINDS] == [99, 656, 245]  # of the 1,000 test questions
    assert all(kinds["train", k] > 0 for k in KINDS)
