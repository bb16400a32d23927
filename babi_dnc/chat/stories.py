"""Story files (`babi-dnc chat --story FILE`): bAbI format or plain lines, fed line by line and graded; the
hand-written story of every task type ships with the package (babi_dnc/stories, the repository's stories/)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO

from ..data import parse_babi_file, story_lines
from ..errors import DataError
from .commands import ChatSession
from .replies import Reply


@dataclass
class StoryScore:
    """Questions answered by a story file, and how many of those with a bAbI answer were right."""

    questions: int = 0
    graded: int = 0
    right: int = 0
    refused: int = 0  # lines not fed (unknown words, ...)

    def add(self, reply: Reply) -> None:
        self.refused += reply.kind == "rejected"
        for answer in reply.answers:
            self.questions += 1
            if answer.correct is not None:
                self.graded += 1
                self.right += answer.correct

    def summary(self) -> str:
        refused = f"; {self.refused} lines refused" if self.refused else ""
        if not self.graded:
            return f"{self.questions} questions answered{refused}"
        return f"accuracy: {self.right}/{self.graded} = {self.right / self.graded:.1%}{refused}"


READ_LIMIT = 10_000  # characters of a line read whole (a chat line has at most ChatConfig.max_chars)


def capped_lines(stream: TextIO, limit: int = READ_LIMIT) -> Iterator[tuple[str, int]]:
    """The lines of a text stream without their ends, each with its length; a line longer than `limit` comes cut
    there, the rest of it skipped in pieces and only counted, so that memory stays bounded whatever the input."""
    while True:
        head = piece = stream.readline(limit)
        if not head:
            return
        length = len(piece)
        while piece and not piece.endswith("\n"):
            piece = stream.readline(1 << 16)
            length += len(piece)
        yield head.rstrip("\r\n"), length - (len(piece) - len(piece.rstrip("\r\n")))


def shown_line(line: str, length: int, limit: int) -> str:
    """A line as chat shows it back: whole, or its start and its length when it is longer than `limit`."""
    return line if length <= limit else f"{line[:60]}... ({length} characters)"


def is_babi_format(text: str) -> bool:
    """Does the text start like a bAbI file ("1 Mary moved to the bathroom.")?"""
    first = next((line for line in text.splitlines() if line.strip()), "")
    return re.match(r"^\d+ \S", first) is not None


def find_story_file(path: str | Path) -> Path:
    """`path` where it exists, else the shipped story of its file name where there is one, so that
    `--story stories/02-two-supporting-facts.txt` works from any folder and from an installed package."""
    path = Path(path)
    shipped = Path(str(resources.files("babi_dnc") / "stories")) / path.name
    return shipped if not path.exists() and shipped.is_file() else path


def story_file_replies(session: ChatSession, path: str | Path) -> Iterator[tuple[int, str, Reply]]:
    """Feed a story file line by line; yields (line number, line, reply).

    bAbI format (line ids, "question<TAB>answer<TAB>support"): every story (ids restart at 1) starts
    from a fresh state, each question gets as many slots as its answer has words and is graded.
    Plain format: one sentence or question per line, optionally "question<TAB>answer" (graded), lines
    starting with '/' are commands, '#' starts a comment line, a blank line starts a new story.
    """
    text = _read_story(find_story_file(path))
    session.reset()
    if is_babi_format(text):
        number = 0
        for story in parse_babi_file(text.encode(), name=str(path)):
            session.reset()
            for line, answer in story_lines(story):
                number += 1
                yield number, line, session.feed(line, answer)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            if session.story:
                session.reset()
            continue
        if line.startswith("#"):
            continue
        reply = session.handle(line)
        yield number, line, reply
        if reply.quit:
            return


def _read_story(path: Path) -> str:
    """The text of a story file; DataError for one that cannot be read or has a line longer than READ_LIMIT
    (refused before it is read whole)."""
    try:
        with open(path, encoding="utf-8-sig") as f:  # a byte order mark is not part of the story
            lines = []
            for number, (line, length) in enumerate(capped_lines(f), start=1):
                if length > READ_LIMIT:
                    raise DataError(f"story file {path} has a line of {length} characters (line {number}), far "
                                    "longer than any story sentence, so split it into sentences.")
                lines.append(line)
    except FileNotFoundError:
        raise DataError(f"story file {path} does not exist, so check the path.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read story file {path} ({type(e).__name__}), so pass a UTF-8 text file.") from None
    return "\n".join(lines) + "\n"
