"""The shortcut of tasks 15 and 16: answering the word a story says most often, a tie broken at random.

    top = most_frequent(["green", "white", "green"])   # ["green"]
    tie_share("green", top)                             # 1.0: how often the shortcut answers "green"
"""

from __future__ import annotations

import collections


def most_frequent(words: list[str]) -> list[str]:
    """The words that occur most often in `words`, in order of first occurrence (several on a tie)."""
    counts = collections.Counter(words)
    top = max(counts.values(), default=0)
    return [word for word, n in counts.items() if n == top]


def tie_share(answer: str, top: list[str]) -> float:
    """How often a shortcut that picks one of `top` at random gives `answer`: 1/k if it is one of the k, else 0."""
    return (answer in top) / len(top) if top else 0.0
