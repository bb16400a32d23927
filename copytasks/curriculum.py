"""Curriculum for the copy tasks: start short with a single repeat, grow when the recent bit error is low.

The levels are (length, repeats) pairs from (min_length, 1) to (max_length, max_repeats). Each advance
raises the length by `length_step`, or for repeat-copy alternately the length and the number of repeats
(the one not yet at its maximum when the other is). Training samples lengths and repeats uniformly up
to the current level, so the shorter sequences are not forgotten. The curriculum advances when the
moving average of the bit errors per sequence over the last `window` measurements (evaluations at the
current level) falls below `threshold`; its state (level and recent errors) is saved for exact resume.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass
class CurriculumConfig:
    """When and how far the curriculum advances."""

    enabled: bool = True  # False: train on the full range from the start
    threshold: float = 0.25  # advance when the mean bit errors per sequence fall below this
    window: int = 2  # number of recent measurements averaged
    length_step: int = 1  # length increment per advance


def curriculum_levels(
    min_length: int, max_length: int, max_repeats: int, length_step: int = 1
) -> list[tuple[int, int]]:
    """The (length, repeats) levels from the easiest to the full task.

    >>> curriculum_levels(1, 3, 2)
    [(1, 1), (2, 1), (2, 2), (3, 2)]
    """
    length, repeats = min_length, 1
    levels = [(length, repeats)]
    grow_length = True
    while (length, repeats) != (max_length, max_repeats):
        if repeats == max_repeats or (grow_length and length < max_length):
            length = min(length + length_step, max_length)
        else:
            repeats += 1
        grow_length = not grow_length
        levels.append((length, repeats))
    return levels


class Curriculum:
    """Tracks the current level and decides when to advance."""

    def __init__(self, config: CurriculumConfig, min_length: int, max_length: int, max_repeats: int):
        self.config = config
        self.levels = curriculum_levels(min_length, max_length, max_repeats, config.length_step)
        self.index = 0 if config.enabled else len(self.levels) - 1
        self.recent: deque[float] = deque(maxlen=config.window)

    @property
    def length(self) -> int:
        """Longest pattern length trained on now."""
        return self.levels[self.index][0]

    @property
    def repeats(self) -> int:
        """Largest number of repeats trained on now."""
        return self.levels[self.index][1]

    @property
    def done(self) -> bool:
        """True at the last level (the full task)."""
        return self.index == len(self.levels) - 1

    def describe(self) -> str:
        """Short text for progress displays, e.g. '3/10 (len 3)' or '4/5 (len 3, rep 2)' (repeats shown
        only when there are several)."""
        repeats = f", rep {self.repeats}" if self.levels[-1][1] > 1 else ""
        return f"{self.index + 1}/{len(self.levels)} (len {self.length}{repeats})"

    def update(self, bit_errors: float) -> bool:
        """Record one measurement of bit errors per sequence at the current level; advance if the moving
        average of the last `window` measurements is below the threshold. Returns True on an advance."""
        if self.done:
            return False
        self.recent.append(float(bit_errors))
        if len(self.recent) < self.recent.maxlen or sum(self.recent) / len(self.recent) >= self.config.threshold:
            return False
        self.index += 1
        self.recent.clear()
        return True

    def state_dict(self) -> dict:
        return {"index": self.index, "recent": list(self.recent)}

    def load_state_dict(self, state: dict) -> None:
        self.index = int(state["index"])
        self.recent = deque((float(x) for x in state["recent"]), maxlen=self.config.window)
