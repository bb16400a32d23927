"""Task 19 (path finding): its rule, and the two kinds of path it asks for.

A task-19 story places five rooms with five facts ("The garden is west of the bathroom. The bathroom is north
of the bedroom. ...") and asks for the way between two of them ("How do you go from the bathroom to the
hallway? s,s"): the two compass steps, first letters joined by a comma, of the path the facts give. A fact
"The X is west of the Y." is a step west from Y to X and a step east from X to Y.

Paths are of two kinds, which is what a model must get right beyond the first step:

    "straight"  both steps in one direction (s,s): one direction, found once, answers both words
    "turn"      two directions (n,w): each step read from its own fact, in order

`path_answer` applies the rule (a breadth-first search over the facts before the question;
tests/test_pathfinding.py checks it against every en-10k training and test label); `path_kind` says which
kind a label is. scripts/reasoning_answers.py breaks a run's test error down by kind.
"""

from __future__ import annotations

import re

TASK = 19
OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}
KINDS = ("straight", "turn")
_FACT = re.compile(r"^The (\w+) is (north|south|east|west) of the (\w+)\.$")
_QUESTION = re.compile(r"^How do you go from the (\w+) to the (\w+)\?$")


def _steps(sentences: list[str]) -> dict[str, dict[str, str]]:
    """room -> {neighbouring room: the direction of the step to it}, both ways of every fact."""
    steps: dict[str, dict[str, str]] = {}
    for m in filter(None, map(_FACT.match, sentences)):
        there, direction, here = m.groups()
        steps.setdefault(here, {})[there] = direction
        steps.setdefault(there, {})[here] = OPPOSITE[direction]
    return steps


def path_answer(story: dict, question: int) -> str | None:
    """The shortest path's steps from the asked room to the other, as the task writes them ("s,s"), by the
    facts before the question; None where no path joins them or it is not a question of the task."""
    asked = _QUESTION.match(story["questions"][question])
    if asked is None:
        return None
    start, goal = asked.groups()
    steps = _steps(story["sentences"][: story["question_after"][question]])
    paths = {start: []}  # room -> the directions that first reached it, breadth first
    queue = [start]
    for here in queue:
        for room, direction in steps.get(here, {}).items():
            if room not in paths:
                paths[room] = paths[here] + [direction]
                queue.append(room)
    return ",".join(d[0] for d in paths[goal]) if goal in paths else None


def path_kind(answer: str) -> str:
    """One of KINDS for an answer of the task's form ("s,s" -> "straight", "n,w" -> "turn")."""
    first, *rest = answer.split(",")
    return KINDS[any(step != first for step in rest)]
