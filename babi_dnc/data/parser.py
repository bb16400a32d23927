"""The bAbI file format: one story per run of line ids 1, 2, ...; statements, and questions with their
answers and supporting facts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import DataError
from .vocab import answer_words

MAX_LINE_CHARS = 10_000  # bAbI lines have under 100 characters; a longer one is damage, not a story


class MalformedLineError(DataError):
    """A line of a bAbI file that does not follow the format; knows the file and the line number."""

    def __init__(self, file: str, line_number: int, problem: str):
        self.file, self.line_number, self.problem = file, line_number, problem
        super().__init__(
            f"{file}:{line_number}: {problem} (bAbI lines are 'ID text' or "
            f"'ID question<TAB>answer<TAB>supporting ids'), so fix or re-download this file."
        )


def parse_babi_file(source: str | Path | bytes | Iterable[str], name: str | None = None) -> list[dict]:
    """Parse one bAbI file into stories, exactly as the format says.

    source: a path, the file's bytes, or an iterable of lines; `name` is the file name used in errors.
    A story starts where the line ids restart at 1; ids must otherwise go up by one. Each story is a dict:
      sentences      list[str]        the statements, in order, without line ids
      questions      list[str]        e.g. "What is Mary carrying?"
      answers        list[str]        one per question, as in the file, e.g. "apple,football", "n,e"
      supporting     list[list[int]]  per question, the supporting facts as 0-based indices into
                                      `sentences` (the file's line ids, translated)
      question_after list[int]        per question, how many sentences come before it
    Blank lines and a UTF-8 byte order mark are skipped. A question is a line whose text ends in '?'
    before its tab; a line over MAX_LINE_CHARS, a line with a '?' but no tab (a question whose tabs became
    spaces), or a statement with a tab, is malformed. Anything malformed raises MalformedLineError (a DataError)
    naming file:line.
    """
    lines, name = _lines(source, name)
    stories: list[dict] = []
    story: dict | None = None
    line_to_sentence: dict[int, int] = {}  # line id -> index into the story's sentences
    last_id = 0
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_LINE_CHARS:
            raise MalformedLineError(name, number, f"a line of {len(line):,} characters (bAbI lines have under 100)")
        id_text, _, text = line.partition(" ")
        if not (id_text.isascii() and id_text.isdigit()) or not text or text.isspace():
            if not line or line.isspace():  # blank lines (and a final newline) are skipped
                continue
            raise MalformedLineError(name, number, "expected a line id, a space and text")
        line_id = int(id_text)
        if line_id == 1:
            story = {"sentences": [], "questions": [], "answers": [], "supporting": [], "question_after": []}
            stories.append(story)
            line_to_sentence = {}
        elif story is None or line_id != last_id + 1:
            expected = "1" if story is None else f"{last_id + 1} or 1 (a new story)"
            raise MalformedLineError(name, number, f"line id {line_id} where {expected} was expected")
        last_id = line_id
        if "\t" in text:
            _add_question(story, text, line_to_sentence, name, number)
        elif "?" in text:  # bAbI statements never hold a '?': a question whose tabs are missing or spaces
            raise MalformedLineError(name, number, "a question without a tab and its answer")
        else:  # a statement
            line_to_sentence[line_id] = len(story["sentences"])
            story["sentences"].append(text.strip())
    return stories


def _lines(source: str | Path | bytes | Iterable[str], name: str | None) -> tuple[Iterable[str], str]:
    """The lines of a bAbI file given as a path, bytes or lines (without line ends), and its name for errors."""
    if isinstance(source, str | Path) and not isinstance(source, bytes):
        path = Path(source)
        name = name or str(path)
        try:
            source = path.read_bytes()
        except OSError as e:
            raise DataError(f"cannot read bAbI file {path} ({e.strerror}), so check the path.") from None
    name = name or "<lines>"
    if not isinstance(source, bytes):
        return (line.rstrip("\r\n").removeprefix("\ufeff") if i == 0 else line.rstrip("\r\n")
                for i, line in enumerate(source)), name
    try:
        return source.decode("utf-8-sig").replace("\r\n", "\n").split("\n"), name
    except UnicodeDecodeError as e:
        raise DataError(f"{name} is not UTF-8 text (byte {e.start}), so re-download it.") from None


def _add_question(story: dict, text: str, line_to_sentence: dict[int, int], name: str, number: int) -> None:
    """Add the question line `text` ("question<TAB>answer[<TAB>supporting ids]") to `story`."""
    fields = text.split("\t")
    if not fields[0].rstrip().endswith("?"):
        raise MalformedLineError(name, number, "a tab in a statement (only a question, ending in '?', has a tab "
                                 "and an answer)")
    if len(fields) > 3:
        raise MalformedLineError(name, number, f"{len(fields) - 1} tabs in a question line, not 2")
    question, answer = fields[0].strip(), fields[1].strip()
    if not question or not answer or ("," in answer and "" in answer_words(answer)):
        raise MalformedLineError(name, number, "a question line needs a question and an answer")
    support = fields[2].split() if len(fields) == 3 else []
    try:
        if support and not ("".join(support).isascii() and "".join(support).isdigit()):
            raise KeyError
        support_index = [line_to_sentence[int(s)] for s in support]
    except KeyError:
        raise MalformedLineError(name, number, f"supporting ids {fields[2].strip()!r} do not all name "
                                 "earlier statements of this story") from None
    story["questions"].append(question)
    story["answers"].append(answer)
    story["supporting"].append(support_index)
    story["question_after"].append(len(story["sentences"]))


def interleave(sentences: list[str], questions: list[str], after: list[int]) -> Iterator[tuple[str, int | None]]:
    """A story's statements and questions in their order: (text, None) for a statement, (text, q) for
    question q, which comes after the first after[q] statements."""
    s = 0
    for q, question in enumerate(questions):
        end = max(s, after[q])
        yield from ((text, None) for text in sentences[s:end])
        s = end
        yield question, q
    yield from ((text, None) for text in sentences[s:])


def story_lines(story: dict) -> list[tuple[str, str | None]]:
    """A parsed story as (text, answer) lines in file order; answer None for statements."""
    lines = interleave(story["sentences"], story["questions"], story["question_after"])
    return [(text, None if q is None else story["answers"][q]) for text, q in lines]
