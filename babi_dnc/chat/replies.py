"""What the chat says: the model's answers, the replies to input lines, and their text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..data import answer_words
from ..metrics import answer_correct


@dataclass
class Answer:
    """The model's answer to one question: one word per '-' slot."""

    question: str  # the question as fed, e.g. "where is mary ?"
    words: list[str]  # the top word at each slot
    top: list[list[tuple[str, float]]]  # per slot, the top-k (word, probability)
    gold: str | None = None  # the bAbI answer when known, e.g. "apple,football"
    graded: bool = True  # False when the story was changed, so the bAbI answer may no longer hold

    @property
    def text(self) -> str:
        """The answer as bAbI writes it: "bathroom", "apple,football", "n,e"."""
        return ",".join(self.words)

    @property
    def correct(self) -> bool | None:
        """Is every answer word right (metrics.answer_correct)? None without a (gradable) gold answer."""
        if self.gold is None or not self.graded:
            return None
        return answer_correct(self.words, answer_words(self.gold))


@dataclass
class Reply:
    """What the session says to one input line.

    kind: "fed" (story text taken, nothing to say), "answer" (at least one answer), "info", "rejected"
    (the line was not fed: the text says why) or "quit".
    items: what to show, in order: text (str) and answers (Answer).
    """

    kind: str
    items: list[str | Answer] = field(default_factory=list)

    @classmethod
    def say(cls, kind: str, text: str) -> Reply:
        return cls(kind, [text])

    @property
    def quit(self) -> bool:
        return self.kind == "quit"

    @property
    def answers(self) -> list[Answer]:
        return [item for item in self.items if isinstance(item, Answer)]

    @property
    def text(self) -> str:
        """The text items, joined by newlines."""
        return "\n".join(item for item in self.items if isinstance(item, str))

    def plain(self) -> str:
        """Everything as plain text, answers formatted by `format_answer`."""
        return "\n".join(format_answer(i) if isinstance(i, Answer) else i for i in self.items)


class Rejected(Exception):
    """A line the model cannot be given; the message says why, in one sentence."""


def detokenize(tokens: list[str]) -> str:
    """["where", "is", "mary", "?"] -> "where is mary?"."""
    return re.sub(r" ([.?])", r"\1", " ".join(tokens))


def format_top(top: list[tuple[str, float]]) -> str:
    """[("bathroom", 0.97), ...] -> "bathroom 97.0% · hallway 2.1% · garden 0.4%"."""
    return " · ".join(f"{w} {p:.1%}" for w, p in top)


def verdict(answer: Answer) -> str:
    """ "right", "wrong (bAbI: kitchen)", "bAbI answer: kitchen (story changed, not scored)" or ""."""
    if answer.gold is None:
        return ""
    if not answer.graded:
        return f"bAbI answer: {answer.gold} (story changed, not scored)"
    return "right" if answer.correct else f"wrong (bAbI: {answer.gold})"


def format_answer(answer: Answer, with_question: bool = False) -> str:
    """One line: "-> bathroom   (bathroom 97.0% · hallway 2.1% · garden 0.4%)  right"."""
    head = f"{answer.question}  " if with_question else ""
    top = "  |  ".join(format_top(t) for t in answer.top)
    tail = verdict(answer)
    return f"{head}-> {answer.text}   ({top})" + (f"  {tail}" if tail else "")
