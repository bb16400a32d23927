"""Task 17 (positional reasoning): its rule, and the three kinds of question it asks.

A task-17 story places three shapes with two facts that share one of them ("The triangle is above the pink
rectangle. The blue square is to the left of the triangle.") and asks yes/no questions about the other two
("Is the pink rectangle to the right of the blue square? yes"). The answer follows from the shapes'
positions on a grid: each fact puts its subject one step from its object, up, down, left or right.

Questions are of three kinds by how many facts lie on the question's axis (vertical: above/below;
horizontal: left/right), which is what a model must combine to answer:

    "no fact on the axis"    neither fact says anything about that axis: the answer is always no
    "one fact on the axis"   the facts lie on different axes: the one on the question's axis decides
    "both facts on the axis" the facts chain on one axis (left of, left of): transitivity

`question_kind` says which; `positional_answer` applies the rule (tests/test_positional.py checks it against
every en-10k training and test label). scripts/reasoning_answers.py breaks a run's test error down by kind.
"""

from __future__ import annotations

import re

TASK = 17
STEP = {"above": (0, 1), "below": (0, -1), "to the left of": (-1, 0), "to the right of": (1, 0)}  # (x, y)
KINDS = ("no fact on the axis", "one fact on the axis", "both facts on the axis")
_RELATION = "|".join(STEP)
_FACT = re.compile(rf"^The (.+) is ({_RELATION}) the (.+)\.$")
_QUESTION = re.compile(rf"^Is the (.+) ({_RELATION}) the (.+)\?$")


def _facts(sentences: list[str]) -> list[tuple[str, str, str]]:
    """(subject, relation, object) of each fact among `sentences`."""
    return [m.groups() for s in sentences if (m := _FACT.match(s))]


def _axis(relation: str) -> int:
    """0 for left/right, 1 for above/below: the grid coordinate the relation is about."""
    return 0 if STEP[relation][0] else 1


def _positions(facts: list[tuple[str, str, str]]) -> dict[str, tuple[int, int]]:
    """Grid position of every shape the facts name, the first fact's object at (0, 0). A fact is placed
    once one of its two shapes is; the task's facts always share a shape."""
    pos = {facts[0][2]: (0, 0)} if facts else {}
    pending = list(facts)
    while pending:
        placed = [f for f in pending if f[0] in pos or f[2] in pos]
        if not placed:
            break
        for subject, relation, obj in placed:
            dx, dy = STEP[relation]
            if obj in pos:
                pos.setdefault(subject, (pos[obj][0] + dx, pos[obj][1] + dy))
            else:
                pos[obj] = (pos[subject][0] - dx, pos[subject][1] - dy)
            pending.remove((subject, relation, obj))
    return pos


def _question(story: dict, question: int):
    """(facts before the question, (shape, relation, shape) asked), or None for another kind of question."""
    asked = _QUESTION.match(story["questions"][question])
    if asked is None:
        return None
    return _facts(story["sentences"][: story["question_after"][question]]), asked.groups()


def positional_answer(story: dict, question: int) -> str | None:
    """"yes" if the asked shape lies in the asked direction of the other along the relation's axis, by the
    positions the facts before the question give; None where a shape is not placed or it is not a question
    of the task."""
    parsed = _question(story, question)
    if parsed is None:
        return None
    facts, (subject, relation, obj) = parsed
    pos = _positions(facts)
    if subject not in pos or obj not in pos:
        return None
    axis = _axis(relation)
    offset = pos[subject][axis] - pos[obj][axis]
    return "yes" if offset * sum(STEP[relation]) > 0 else "no"


def question_kind(story: dict, question: int) -> str | None:
    """One of KINDS: how many of the facts before `question` lie on its axis (None: not a task-17 question)."""
    parsed = _question(story, question)
    if parsed is None:
        return None
    facts, (_, relation, _) = parsed
    return KINDS[min(2, sum(_axis(r) == _axis(relation) for _, r, _ in facts))]
