"""The 20 bAbI tasks, the two sets, task lists such as "1,2,5-7", and the task files' names."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import DataError

TASK_NAMES: dict[int, str] = {
    1: "single-supporting-fact",
    2: "two-supporting-facts",
    3: "three-supporting-facts",
    4: "two-arg-relations",
    5: "three-arg-relations",
    6: "yes-no-questions",
    7: "counting",
    8: "lists-sets",
    9: "simple-negation",
    10: "indefinite-knowledge",
    11: "basic-coreference",
    12: "conjunction",
    13: "compound-coreference",
    14: "time-reasoning",
    15: "basic-deduction",
    16: "basic-induction",
    17: "positional-reasoning",
    18: "size-reasoning",
    19: "path-finding",
    20: "agents-motivations",
}
SETS = ("en-10k", "en")
SPLITS = ("train", "test")


class TaskSpecError(DataError):
    """A --tasks value that is not `all` or a list like `1,2,5-7` of tasks 1..20."""


_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")
_TASK_OF_FILE = re.compile(r"/qa(\d+)_")


def parse_task_spec(spec: str | int | Iterable[int] | None) -> list[int]:
    """"all" -> 1..20; "1,2,5-7" -> [1, 2, 5, 6, 7] (sorted, without repeats); also an int or a list.

    Raises TaskSpecError (a DataError) on anything else or on tasks outside 1..20.
    """
    if spec is None:
        return list(TASK_NAMES)
    if isinstance(spec, int):
        items: list[int] = [spec]
    elif isinstance(spec, str):
        text = spec.strip().lower()
        if text == "all":
            return list(TASK_NAMES)
        items = []
        for part in text.split(","):
            part = part.strip()
            m = _RANGE.match(part)
            if part.isdigit():
                items.append(int(part))
            elif m and int(m.group(1)) <= int(m.group(2)):
                items.extend(range(int(m.group(1)), int(m.group(2)) + 1))
            else:
                raise TaskSpecError(f"bad task list {spec!r}: write 'all' or numbers and ranges such as "
                                    "'1,2,5-7' (tasks 1 to 20).")
    else:
        try:
            items = [int(t) for t in spec]
        except (TypeError, ValueError):
            raise TaskSpecError(f"bad task list {spec!r}: give 'all', '1,2,5-7' or a list of "
                                "task numbers 1 to 20.") from None
    bad = [t for t in items if t not in TASK_NAMES]
    if bad or not items:
        raise TaskSpecError(f"bad task list {spec!r}: bAbI has tasks 1 to 20, so choose among those "
                            "(for example 'all' or '1,2,5-7').")
    return sorted(set(items))


def format_task_spec(tasks: Iterable[int]) -> str:
    """The inverse of parse_task_spec: [1, 2, 3, 5] -> "1-3,5"."""
    tasks = sorted(set(tasks))
    parts, start = [], None
    for i, t in enumerate(tasks):
        start = t if start is None else start
        if i + 1 == len(tasks) or tasks[i + 1] != t + 1:
            parts.append(str(t) if start == t else f"{start}-{t}")
            start = None
    return ",".join(parts)


def task_file(set_name: str, task: int, split: str) -> str:
    """Path of a task file inside tasks_1-20_v1-2, e.g. "en-10k/qa8_lists-sets_train.txt"."""
    return f"{set_name}/qa{task}_{TASK_NAMES[task]}_{split}.txt"


def task_of_file(name: str) -> int:
    """The task of a task file's path: "en-10k/qa8_lists-sets_train.txt" -> 8."""
    return int(_TASK_OF_FILE.search(name).group(1))


def check_set(set_name: str) -> None:
    """DataError unless `set_name` is one of SETS."""
    if set_name not in SETS:
        raise DataError(f"unknown bAbI set {set_name!r}: choose one of {', '.join(SETS)}.")
