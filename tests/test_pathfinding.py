"""Task 19's rule and path kinds (data/pathfinding.py): hand-checked stories, and every real en-10k task-19
label where the real files are found (conftest.REAL_BABI)."""

from __future__ import annotations

import collections

from babi_dnc.data import parse_babi_file
from babi_dnc.data.pathfinding import KINDS, path_answer, path_kind

from .conftest import REAL_BABI, needs_real_babi

# the first two stories of en-10k's test file, then one written here whose path turns
STORIES = """\
1 The garden is west of the bathroom.
2 The bedroom is north of the hallway.
3 The office is south of the hallway.
4 The bathroom is north of the bedroom.
5 The kitchen is east of the bedroom.
6 How do you go from the bathroom to the hallway?\ts,s\t4 2
1 The hallway is west of the bathroom.
2 The office is south of the bedroom.
3 The garden is north of the bedroom.
4 The kitchen is east of the bedroom.
5 The hallway is east of the kitchen.
6 How do you go from the bedroom to the hallway?\te,e\t4 5
1 The kitchen is north of the garden.
2 The office is west of the kitchen.
3 How do you go from the garden to the office?\tn,w\t1 2
4 How do you go from the office to the garden?\te,s\t2 1
"""


def test_the_rule_walks_the_facts_both_ways():
    for story in parse_babi_file(STORIES.encode()):
        assert [path_answer(story, q) for q in range(len(story["questions"]))] == story["answers"]


def test_the_kind_says_whether_the_path_turns():
    assert path_kind("s,s") == "straight" and path_kind("n,w") == "turn" and path_kind("e,s") == "turn"


def test_other_questions_and_unjoined_rooms_have_no_answer():
    story = {"sentences": ["Mary went to the kitchen."], "questions": ["Where is Mary?"], "question_after": [1]}
    assert path_answer(story, 0) is None
    apart = {"sentences": ["The kitchen is north of the garden.", "The office is west of the hallway."],
             "questions": ["How do you go from the garden to the office?"], "question_after": [2]}
    assert path_answer(apart, 0) is None
    later = {**apart, "question_after": [0]}  # the facts come after the question: none are known yet
    assert path_answer(later, 0) is None


@needs_real_babi
def test_every_real_task_19_label_follows_the_rule():
    kinds = collections.Counter()
    for split in ("train", "test"):
        for story in parse_babi_file(REAL_BABI / "en-10k" / f"qa19_path-finding_{split}.txt"):
            for q, answer in enumerate(story["answers"]):
                assert path_answer(story, q) == answer
                kinds[split, path_kind(answer)] += 1
    assert [kinds["test", k] for k in KINDS] == [310, 690]  # of the 1,000 test questions
    assert [kinds["train", k] for k in KINDS] == [3380, 6620]
