"""Tell a trained model a story, line by line, and ask it questions (`babi-dnc chat`).

The story is fed exactly as one bAbI story is fed in training (`data.encode_story`): the same tokenizer,
lower case, '.' and '?' as words, and after every question its '-' answer slots. The recurrent state (the
DNC's controller state, memory, usage, links and read weightings; the LSTM's h and c) is carried from
line to line, so a story typed one sentence at a time gives the same numbers as the whole story fed at
once. The model's output at each '-' is one answer word; the chat shows the top words and their
probabilities.

Answer slots. In bAbI the number of '-' after a question is the number of answer words; the model never
chooses it, so the chat decides it for every question, first match wins:

  1. '-' typed right after the '?' ("What is Mary carrying? - -"): that many;
  2. a known bAbI answer (a --story file with answers, an /example question): its number of words;
  3. `/slots N`: N for every question until `/slots auto`;
  4. auto: 2 for path questions ("How do you go from the kitchen to the garden?": every task 19 answer
     has two directions, "n,e"), else 1, also for task 8's "What is X carrying?" (93% of its answers are
     one word; ask "What is X carrying? - -" for two).

The slots stay in the state after the answer, as in training. A line may hold several sentences and
questions; a line without final punctuation gets a '.'.

    session = ChatSession.from_run("runs/dnc-small")
    session.handle("Mary moved to the bathroom.")     # Reply(kind="fed")
    reply = session.handle("Where is Mary?")          # reply.answers[0].words == ["bathroom"]
    session.handle("/memory")                         # commands: /help lists them
    chat_loop(session, console)                       # the interactive loop (rich prompt or plain stdin)
    print_story_file(session, "story.txt", console)   # scripted: one answer per question, accuracy
"""

from __future__ import annotations

import contextlib
import difflib
import os
import random
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .checkpoint import find_runs
from .data import (
    ENV_DATA,
    TASK_NAMES,
    Vocabulary,
    answer_words,
    parse_babi_file,
    parse_task_spec,
    resolve_source,
    task_file,
    tokenize,
)
from .errors import CheckpointError, DataError, UserError
from .runs import load_run

SLOT = Vocabulary.ANSWER  # '-'
ENDS = (".", "?")  # the only sentence ends bAbI has
QUESTION_WORDS = {"where", "what", "who", "whom", "how", "why", "which", "is", "does", "do", "did", "are", "was"}


@dataclass
class ChatConfig:
    """Limits and display settings of a chat session."""

    top_k: int = 3  # answer candidates shown per slot
    max_chars: int = 1000  # longer lines are refused
    max_words: int = 100  # tokens per line ('.' and '?' count), longer lines are refused
    max_slots: int = 5  # answer slots per question
    suggestions: int = 3  # closest known words suggested for an unknown one
    memory_columns: int = 64  # width of the /memory heat maps (more slots are averaged in bins)
    memory_rows: int = 16  # steps shown by /memory (the last ones of the last line)
    trace_steps: int = 2000  # steps of memory trace kept for /memory --png (the oldest lines are dropped)


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
        """Is every answer word right? None without a (gradable) gold answer."""
        if self.gold is None or not self.graded:
            return None
        return self.words == answer_words(self.gold)


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


@dataclass
class _Example:
    """A bAbI test story being told: its lines, and how far it has been fed."""

    task: int
    index: int  # story index in the test file
    count: int  # stories in the file
    lines: list[tuple[str, str | None]]  # (text, answer) in story order; answer None for statements
    next: int = 0  # the first line not fed yet
    changed: bool = False  # the user fed statements of their own, so later bAbI answers may not hold
    right: int = 0
    asked: int = 0

    def pending_question(self) -> tuple[str, str] | None:
        if self.next < len(self.lines) and self.lines[self.next][1] is not None:
            return self.lines[self.next]  # type: ignore[return-value]
        return None


# ------------------------------------------------------------------------------------------ text


def answer_slots(tokens: list[str]) -> int:
    """The automatic number of answer slots of a question (tokens, '?' included): 2 for task 19's
    "how do you go from X to Y ?", else 1."""
    return 2 if tokens[:4] == ["how", "do", "you", "go"] else 1


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


def suggest(word: str, vocab: Vocabulary, n: int = 3) -> list[str]:
    """The known words closest to `word` (difflib ratio), best first; punctuation is never suggested."""
    words = [w for w in vocab.words if w.isalnum()]
    return difflib.get_close_matches(word, words, n=n, cutoff=0.6)


# ------------------------------------------------------------------------------------------ data


def load_test_stories(set_name: str, task: int, data_dir: str | Path | None = None) -> list[dict]:
    """The stories of one bAbI test file (`data.parse_babi_file` dicts); data_dir as in `data.load_babi`."""
    source = resolve_source(data_dir)
    name = task_file(set_name, task, "test")
    if source.kind == "local-dir":
        path = source.path / name
        if not path.is_file():
            raise DataError(f"{path} is missing, so point --data-dir at a complete {set_name} copy of bAbI.")
        return parse_babi_file(path)
    files = source.read_set(set_name)
    if name not in files:
        raise DataError(f"{source.path} has no {name}, so point --data-dir at a complete copy of bAbI.")
    return parse_babi_file(files[name], name=name)


def story_lines(story: dict) -> list[tuple[str, str | None]]:
    """A parsed story as (text, answer) lines in file order; answer None for statements."""
    lines: list[tuple[str, str | None]] = []
    s = 0
    for q, question in enumerate(story["questions"]):
        end = max(s, story["question_after"][q])
        lines.extend((text, None) for text in story["sentences"][s:end])
        s = end
        lines.append((question, story["answers"][q]))
    lines.extend((text, None) for text in story["sentences"][s:])
    return lines


# ------------------------------------------------------------------------------------------ session


HELP = """\
Type story sentences ("Mary moved to the bathroom.") and questions ending in '?' ("Where is Mary?").
The model reads the story line by line, as in training, and answers each question at once.
Answer slots: 1 per question, 2 for "How do you go from ..." paths; type '-' after the '?' to choose
("What is Mary carrying? - -"), or /slots N. A line with a tab, "question<TAB>answer", is graded.
Commands:
  /help              this text
  /reset             forget the story (a fresh state and memory)
  /example [TASK]    tell a random bAbI test story of TASK, up to its first question
  /next              ask the example's next question (an empty line does too)
  /story             the story so far, with the model's answers
  /memory            the last line's write and read weightings and the usage, over memory slots
  /memory --png FILE the whole story's memory operations as a picture
  /slots [N|auto]    answer slots per question
  /words [PREFIX]    the words the model knows
  /quit              leave (also /exit, Ctrl-D and Ctrl-C)"""


class ChatSession:
    """A story told to a model, one line at a time; answers questions and runs commands.

    Args:
        model: a bAbI model (`models.BabiModel`, DNC or LSTM): model(ids [1, T], state, trace=...) ->
            (logits [1, T, V], state[, trace]).
        vocab: the vocabulary the model was trained with.
        config: limits and display settings.
        set_name, tasks: the bAbI set and tasks of the run (for /example).
        data_dir: where /example finds bAbI (None: $BABI_DNC_DATA, else the Hugging Face Hub).
        seed: seed of /example's story choice.
        description: a line about the model for the banner.
    """

    def __init__(
        self,
        model: nn.Module,
        vocab: Vocabulary,
        config: ChatConfig | None = None,
        set_name: str = "en-10k",
        tasks: list[int] | None = None,
        data_dir: str | Path | None = None,
        seed: int | None = None,
        description: str = "",
    ):
        self.model, self.vocab = model.eval(), vocab
        self.config = config or ChatConfig()
        self.set_name, self.tasks, self.data_dir = set_name, tasks or [1], data_dir
        self.rng = random.Random(seed)
        self.description = description
        self.device = next(model.parameters()).device
        self.has_memory = hasattr(getattr(model, "core", model), "memory")  # the DNC has one, the LSTM not
        self.slots: int | None = None  # /slots N; None = auto
        self._stories: dict[int, list[dict]] = {}  # test stories per task, loaded on first /example
        self.reset()

    @classmethod
    def from_run(cls, run_dir: str | Path, tag: str = "best", device: str = "cpu",
                 data_dir: str | Path | None = None, seed: int | None = None,
                 config: ChatConfig | None = None) -> ChatSession:  # fmt: skip
        """Load checkpoint `tag` ("best" or "latest") of a bAbI run; a folder of seed-N runs gives seed 0.

        /example data: `data_dir`, else $BABI_DNC_DATA, else the run's training data folder if it still
        exists, else the Hugging Face Hub.
        """
        if tag not in ("best", "latest"):
            raise CheckpointError(f"--checkpoint must be best or latest, not {tag!r}.")
        runs = find_runs(run_dir)
        if not runs:
            raise CheckpointError(f"{run_dir} is not a run directory: pass a folder written by `babi-dnc train`.")
        model, info = load_run(runs[0], tag=tag, device=device)
        data = info["config"].get("data", {})
        if data_dir is None and not os.environ.get(ENV_DATA) and data.get("data_dir"):
            data_dir = data["data_dir"] if Path(data["data_dir"]).exists() else None
        try:
            tasks = parse_task_spec(data.get("tasks", "all"))
        except DataError:
            tasks = None
        return cls(model, info["vocab"], config=config, set_name=data.get("set_name", "en-10k"), tasks=tasks,
                   data_dir=data_dir, seed=seed, description=describe_run(runs[0], info))  # fmt: skip

    # -------------------------------------------------------------------------------------- state

    def reset(self) -> None:
        """Forget the story: a fresh recurrent state and memory."""
        self.state = None
        self.story: list[tuple[str, list[Answer]]] = []  # (line as typed, its answers)
        self.tokens: list[str] = []  # every token fed since the reset, '-' slots included
        self._traces: list[tuple[list[str], dict]] = []  # (tokens, trace [1, T, ...]) per fed line
        self.example: _Example | None = None

    @torch.inference_mode()
    def _run(self, tokens: list[str]) -> torch.Tensor:
        """Feed tokens, carrying the state; returns the answer probabilities [T, V]."""
        ids = torch.tensor([self.vocab.encode(tokens)], device=self.device)  # [1, T]
        out = self.model(ids, state=self.state, trace=self.has_memory)
        self.state = out[1]
        if self.has_memory and out[2]:
            self._traces.append((list(tokens), out[2]))
            while sum(len(t) for t, _ in self._traces) > self.config.trace_steps and len(self._traces) > 1:
                self._traces.pop(0)
        self.tokens.extend(tokens)
        return out[0][0].float().softmax(-1)  # [T, V]

    # -------------------------------------------------------------------------------------- lines

    def handle(self, line: str) -> Reply:
        """One input line: a command ("/..."), an empty line, or story text (optionally "text<TAB>answer")."""
        line = line.strip()
        if not line:
            if self.example is not None and self.example.pending_question():
                return self.cmd_next("")
            return Reply.say("info", "Type a sentence, a question ending in '?', or /help.")
        if line.startswith("/"):
            return self.command(line)
        text, _, gold = line.partition("\t")
        return self.feed(text, gold.strip() or None)

    def feed(self, text: str, gold: str | None = None) -> Reply:
        """Feed story text typed by the user (statements and questions) and answer every question.

        gold: the bAbI answer of the line's (last) question, to grade it. During an /example, typing its
        next question asks it with its bAbI answer; statements of the user's own change the story, so
        later bAbI answers are shown but not scored. Refused lines give Reply("rejected")."""
        example = self.example
        if example is not None and gold is None and (pending := example.pending_question()):
            with contextlib.suppress(Rejected):
                if [piece for piece, _ in self.parse(text)] == [tokenize(pending[0])]:
                    return self.cmd_next("")
        reply = self._feed(text, gold)
        if example is not None and reply.kind in ("fed", "answer") and self._has_statement(text):
            example.changed = True
        return reply

    def _has_statement(self, text: str) -> bool:
        """Does the (accepted) line hold a statement?"""
        return any(slots < 0 for _, slots in self._split(tokenize(text)))

    def _feed(self, text: str, gold: str | None = None, graded: bool = True) -> Reply:
        """Check, feed and answer one line of story text (see `feed`)."""
        try:
            pieces = self.parse(text, gold)
        except Rejected as e:
            return Reply.say("rejected", f"{e} (not fed)")
        tokens = [t for piece, slots in pieces for t in piece + [SLOT] * slots]
        probs = self._run(tokens)  # [T, V]
        last = max((i for i, (_, slots) in enumerate(pieces) if slots), default=-1)  # the question `gold` answers
        answers, t = [], 0
        for i, (piece, slots) in enumerate(pieces):
            t += len(piece)
            if slots:
                answers.append(self._answer(piece, probs[t : t + slots], gold if i == last else None, graded))
            t += slots
        if len(pieces) == 1 and answers:
            answers[0].question = text.strip()  # as typed
        self.story.append((" ".join(text.split()), answers))  # as typed
        if answers:
            return Reply("answer", list(answers))
        if text.strip()[-1:] not in ENDS and tokens[0] in QUESTION_WORDS:
            return Reply.say("fed", "(fed as a statement: end a question with '?')")
        return Reply("fed")

    def parse(self, text: str, gold: str | None = None) -> list[tuple[list[str], int]]:
        """Check a line and split it into (sentence tokens, answer slots): slots > 0 for questions.

        Raises Rejected with one sentence for empty, punctuation-only, over-long or non-ASCII lines,
        misplaced '-' and unknown words (with the closest known words).
        """
        cfg = self.config
        if len(text) > cfg.max_chars:
            raise Rejected(f"that line is too long ({len(text)} characters, at most {cfg.max_chars}); "
                           "bAbI sentences are short, so split it")  # fmt: skip
        odd = sorted({c for c in text if ord(c) > 127 or not c.isprintable()})
        if odd:
            shown = " ".join(repr(c) for c in odd[:5])
            raise Rejected(f"the model only knows plain ASCII English words, and the line has {shown}")
        tokens = tokenize(text)
        if not any(t.isalnum() for t in tokens):
            raise Rejected("that line has no words, only punctuation")
        if len(tokens) > cfg.max_words:
            raise Rejected(f"that line is too long ({len(tokens)} words, at most {cfg.max_words}); split it")
        unknown = [t for t in self.vocab.unknown(tokens) if t != SLOT]
        if unknown:
            raise Rejected(self._unknown_message(unknown))
        pieces = self._split(tokens)
        questions = [i for i, (_, slots) in enumerate(pieces) if slots >= 0]
        if gold is not None and questions:
            words = answer_words(gold)
            if "" in words or len(words) > cfg.max_slots:
                raise Rejected(f"the answer after the tab, {gold!r}, is not one to {cfg.max_slots} words "
                               "separated by ','")  # fmt: skip
        for i in questions:
            piece, slots = pieces[i]
            if slots == 0:  # no '-' typed: decide (see the module docstring)
                if gold is not None and i == questions[-1]:
                    slots = len(answer_words(gold))
                else:
                    slots = self.slots or answer_slots(piece)
            pieces[i] = (piece, slots)
        return [(piece, max(slots, 0)) for piece, slots in pieces]

    def _split(self, tokens: list[str]) -> list[tuple[list[str], int]]:
        """Tokens -> (sentence, typed slots): -1 for statements, the number of '-' typed after a '?'
        (0 if none). Sentences of punctuation only are dropped; a final sentence without '.' gets one."""
        pieces, current, i = [], [], 0
        while i < len(tokens):
            token = tokens[i]
            if token == SLOT:
                raise Rejected("'-' marks an answer slot, so it may only follow a '?' "
                               "(\"What is Mary carrying? - -\")")  # fmt: skip
            current.append(token)
            if token in ENDS:
                slots = -1
                if token == "?":
                    slots = 0
                    while i + 1 < len(tokens) and tokens[i + 1] == SLOT:
                        slots, i = slots + 1, i + 1
                    if slots > self.config.max_slots:
                        raise Rejected(f"{slots} answer slots is too many (at most {self.config.max_slots})")
                if any(t.isalnum() for t in current):
                    pieces.append((current, slots))
                current = []
            i += 1
        if any(t.isalnum() for t in current):
            pieces.append((current + ["."], -1))
        return pieces

    def _unknown_message(self, unknown: list[str]) -> str:
        """ "unknown word 'bathrom' (did you mean bathroom?)" for every unknown word."""
        parts = []
        for word in unknown[:8]:
            close = suggest(word, self.vocab, self.config.suggestions)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            parts.append(f"{word!r}{hint}")
        more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
        s = "s" if len(unknown) > 1 else ""
        return f"the model does not know the word{s} {', '.join(parts)}{more}; /words lists the known ones"

    def _answer(self, question: list[str], probs: torch.Tensor, gold: str | None, graded: bool) -> Answer:
        """The Answer from the probabilities [slots, V] at a question's '-' steps."""
        k = min(self.config.top_k, probs.shape[-1])
        p, i = probs.topk(k, dim=-1)  # [slots, k]
        top = [list(zip(self.vocab.decode(ids), ps, strict=True)) for ids, ps in zip(i.tolist(), p.tolist())]
        return Answer(detokenize(question), [t[0][0] for t in top], top, gold, graded)

    # -------------------------------------------------------------------------------------- commands

    def command(self, line: str) -> Reply:
        """Run "/name args"."""
        name, _, args = line[1:].strip().partition(" ")
        handler = COMMANDS.get(name.lower())
        if handler is None:
            close = difflib.get_close_matches(name.lower(), list(COMMANDS), n=1)
            hint = f" (did you mean /{close[0]}?)" if close else ""
            return Reply.say("rejected", f"unknown command /{name}{hint}; /help lists the commands")
        try:
            return handler(self, args.strip())
        except UserError as e:  # e.g. no bAbI data for /example
            return Reply.say("rejected", str(e))

    def cmd_help(self, args: str) -> Reply:
        return Reply.say("info", HELP)

    def cmd_quit(self, args: str) -> Reply:
        return Reply.say("quit", "bye")

    def cmd_reset(self, args: str) -> Reply:
        self.reset()
        return Reply.say("info", "New story: the state and memory are reset.")

    def cmd_slots(self, args: str) -> Reply:
        if args.lower() == "auto":
            self.slots = None
        elif args:
            if not args.isdigit() or not 1 <= int(args) <= self.config.max_slots:
                return Reply.say("rejected", f"/slots takes auto or a number from 1 to {self.config.max_slots}")
            self.slots = int(args)
        now = "auto (2 for 'How do you go from ...', else 1)" if self.slots is None else str(self.slots)
        return Reply.say("info", f"answer slots per question: {now}")

    def cmd_words(self, args: str) -> Reply:
        words = [w for w in self.vocab.words if w.isalnum() and w.startswith(args.lower())]
        if not words:
            return Reply.say("info", f"no known word starts with {args!r}")
        return Reply.say("info", f"{len(words)} known words: " + " ".join(words))

    def cmd_story(self, args: str) -> Reply:
        if not self.story:
            return Reply.say("info", "The story is empty: type a sentence, or /example.")
        lines = []
        for n, (text, answers) in enumerate(self.story, start=1):
            said = "; ".join(f"-> {a.text}" + (f"  {verdict(a)}" if a.gold else "") for a in answers)
            lines.append(f"{n:>3} {text}" + (f"   {said}" if said else ""))
        if self.example is not None:
            left = len(self.example.lines) - self.example.next
            lines.append(f"(example: task {self.example.task}, {left} lines still to come; /next)")
        return Reply.say("info", "\n".join(lines))

    def cmd_memory(self, args: str) -> Reply:
        if not self.has_memory:
            return Reply.say("info", "This model has no external memory to show: it is an LSTM, not a DNC.")
        if not self._traces:
            return Reply.say("info", "Nothing fed yet: tell a story first.")
        if args:
            option, _, path = args.partition(" ")
            if option != "--png" or not path.strip():
                return Reply.say("rejected", "use /memory, or /memory --png FILE")
            path = Path(path.strip()).expanduser()
            if path.is_dir():
                return Reply.say("rejected", f"{path} is a folder: give a file name such as memory.png")
            return self._memory_png(path if path.suffix else path.with_suffix(".png"))
        return Reply.say("info", self.memory_text())

    def memory_text(self) -> str:
        """Heat maps of the last line's write and read weightings (rows: steps, columns: slots) and the
        usage after its last step, in shade blocks."""
        from .viz import SHADES, text_heatmap

        tokens, trace = self._traces[-1]
        rows = self.config.memory_rows
        labels = tokens[-rows:]
        write = trace["write_weights"][0, -rows:]  # [T, N]
        read = trace["read_weights"][0, -rows:].sum(1)  # [T, N], heads summed
        usage = trace["usage"][0, -1:]  # [1, N]
        N, R = write.shape[-1], trace["read_weights"].shape[2]
        cols = min(N, self.config.memory_columns)
        width = max(len(t) for t in labels + ["usage"])
        binned = f", {N / cols:.3g} slots per column" if N > cols else ""
        ruler = f"{'':>{width}} 0{str(N - 1):>{cols - 1}}" if cols > 1 else ""
        heads = f", {R} heads summed" if R > 1 else ""
        return "\n".join([
            f"memory: {N} slots (columns{binned}); rows: the last line's steps; shades '{SHADES[1:]}' "
            "= a quarter to all of the panel's largest value",
            f"write weighting (largest {float(write.max()):.2f})",
            ruler, text_heatmap(write, cols, [f"{t:>{width}}" for t in labels]),
            f"read weighting{heads} (largest {float(read.max()):.2f})",
            ruler, text_heatmap(read, cols, [f"{t:>{width}}" for t in labels]),
            f"usage after the last step (largest {float(usage.max()):.2f}; "
            f"{int((usage > 0.5).sum())} of {N} slots above 0.5)",
            ruler, text_heatmap(usage, cols, [f"{'usage':>{width}}"]),
        ])  # fmt: skip

    def _memory_png(self, path: Path) -> Reply:
        """Save the whole story's memory trace (every quantity, every step kept) with viz.plot_memory."""
        from .viz import plot_memory

        tokens = [t for ts, _ in self._traces for t in ts]
        trace = {k: torch.cat([tr[k] for _, tr in self._traces], dim=1) for k in self._traces[0][1]}
        try:
            plot_memory(trace, tokens=tokens, path=path, title=f"memory over the story ({len(tokens)} steps)")
        except (OSError, ValueError) as e:
            return Reply.say("rejected", f"could not save {path} ({e}); choose another file")
        return Reply.say("info", f"saved the memory plot of the story's {len(tokens)} steps to {path}")

    def cmd_example(self, args: str) -> Reply:
        task = self.rng.choice(self.tasks) if not args else None
        if args:
            if not args.isdigit() or int(args) not in TASK_NAMES:
                return Reply.say("rejected", "/example takes a task number from 1 to 20")
            task = int(args)
        if task not in self._stories:
            self._stories[task] = load_test_stories(self.set_name, task, self.data_dir)
        stories = self._stories[task]
        if not stories:
            return Reply.say("rejected", f"the task {task} test file has no stories")
        index = self.rng.randrange(len(stories))
        self.reset()
        self.example = _Example(task, index, len(stories), story_lines(stories[index]))
        note = "" if task in self.tasks else f" (the model was not trained on task {task})"
        head = f"task {task} ({TASK_NAMES[task]}), test story {index + 1} of {len(stories)}{note}:"
        return Reply.say("info", "\n".join([head, *self._advance_example()]))

    def cmd_next(self, args: str) -> Reply:
        example = self.example
        pending = example.pending_question() if example else None
        if pending is None:
            return Reply.say("info", "No example question is waiting: /example loads a story.")
        text, gold = pending
        example.next += 1
        reply = self._feed(text, gold, graded=not example.changed)
        if reply.kind == "rejected":
            example.changed = True
            return Reply("rejected", [f"{example.next:>3} {text}", *reply.items, *self._advance_example()])
        example.asked += 1
        example.right += bool(reply.answers[-1].correct)
        return Reply("answer", [f"{example.next:>3} {text}", *reply.items, *self._advance_example()])

    def _advance_example(self) -> list[str]:
        """Feed the example's statements up to its next question; returns the lines to show."""
        example = self.example
        shown = []
        while example.next < len(example.lines) and example.lines[example.next][1] is None:
            text = example.lines[example.next][0]
            example.next += 1
            reply = self._feed(text)
            if reply.kind == "rejected":
                example.changed = True
            shown.append(f"{example.next:>3} {text}" + (f"   [{reply.text}]" if reply.kind == "rejected" else ""))
        pending = example.pending_question()
        if pending:
            shown.append(f"next bAbI question: {pending[0]}  (Enter or /next asks it; or type your own)")
        else:
            scored = f": {example.right}/{example.asked} right" if example.asked else ""
            shown.append(f"end of the example{scored}. Ask your own questions, /example for another, /reset.")
            self.example = None
        return shown

    # -------------------------------------------------------------------------------------- text

    def banner(self) -> str:
        intro = "Tell it a story, one sentence per line; end a question with '?'. /help for commands, /quit to leave."
        return f"{self.description}\n{intro}" if self.description else intro


COMMANDS: dict[str, Callable[[ChatSession, str], Reply]] = {
    "help": ChatSession.cmd_help, "?": ChatSession.cmd_help, "reset": ChatSession.cmd_reset,
    "example": ChatSession.cmd_example, "next": ChatSession.cmd_next, "story": ChatSession.cmd_story,
    "memory": ChatSession.cmd_memory, "slots": ChatSession.cmd_slots, "words": ChatSession.cmd_words,
    "quit": ChatSession.cmd_quit, "exit": ChatSession.cmd_quit, "q": ChatSession.cmd_quit,
}  # fmt: skip


def describe_run(run_dir: Path, info: dict) -> str:
    """ "DNC (memory 32 x 32, 2 read heads) from RUN, step 4000, validation error 0.3%, en-10k tasks 1"."""
    model = info["config"].get("model", {})
    if model.get("model") == "dnc":
        heads = model.get("read_heads")
        memory = f"memory {model.get('memory_slots')} x {model.get('word_size')}"
        kind = f"DNC ({memory}, {heads} read head{'s' * (heads != 1)})"
    else:
        kind = f"LSTM ({model.get('lstm_size')} units)"
    error = info.get("metrics", {}).get("error")
    error_text = f", validation error {error:.1%}" if isinstance(error, int | float) else ""
    data = info["config"].get("data", {})
    task_text = f", trained on bAbI {data.get('set_name', '?')} tasks {data.get('tasks', '?')}"
    return f"{kind} from {run_dir}, step {info.get('step', '?')}{error_text}{task_text}"


# ------------------------------------------------------------------------------------------ story files


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


def is_babi_format(text: str) -> bool:
    """Does the text start like a bAbI file ("1 Mary moved to the bathroom.")?"""
    first = next((line for line in text.splitlines() if line.strip()), "")
    return re.match(r"^\d+ \S", first) is not None


def story_file_replies(session: ChatSession, path: str | Path) -> Iterator[tuple[int, str, Reply]]:
    """Feed a story file line by line; yields (line number, line, reply).

    bAbI format (line ids, "question<TAB>answer<TAB>support"): every story (ids restart at 1) starts
    from a fresh state, each question gets as many slots as its answer has words and is graded.
    Plain format: one sentence or question per line, optionally "question<TAB>answer" (graded), lines
    starting with '/' are commands, '#' starts a comment line, a blank line starts a new story.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"story file {path} does not exist, so check the path.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read story file {path} ({type(e).__name__}), so pass a UTF-8 text file.") from None
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


# ------------------------------------------------------------------------------------------ terminal


STYLES = {"info": "", "rejected": "yellow", "quit": "dim", "answer": "", "fed": ""}


def render(console, reply: Reply, with_question: bool = False) -> None:
    """Print a reply with rich: answers in bold (green when right, red when wrong), refusals in yellow."""
    from rich.text import Text

    for item in reply.items:
        if isinstance(item, str):
            console.print(Text(item, style=STYLES.get(reply.kind, "")), soft_wrap=True)
            continue
        good = {True: "bold green", False: "bold red", None: "bold"}[item.correct]
        line = Text(f"{item.question}  " if with_question else "")
        line.append("-> ", style="dim").append(item.text, style=good)
        line.append("   (" + "  |  ".join(format_top(t) for t in item.top) + ")", style="dim")
        if verdict(item):
            line.append(f"  {verdict(item)}", style=good.replace("bold ", ""))
        console.print(line, soft_wrap=True)


def chat_loop(session: ChatSession, console, stdin=None) -> None:
    """The interactive loop: read a line, handle it, print the reply, until /quit, Ctrl-D or Ctrl-C.

    On a terminal the prompt is rich's (with readline editing and history); from a pipe or file, lines
    are read plainly and echoed as "> line" so the output reads as a transcript.
    """
    stdin = stdin or sys.stdin
    tty = stdin.isatty()
    if hasattr(stdin, "reconfigure"):
        stdin.reconfigure(errors="replace")  # undecodable bytes become U+FFFD: refused, not a traceback
    if tty:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
    console.print(session.banner(), style="dim", highlight=False, soft_wrap=True)
    while True:
        try:
            line = console.input("[bold cyan]>[/] ") if tty else _read_plain(stdin)
            if not tty:
                console.print(f"> {line}", highlight=False, markup=False, soft_wrap=True)
            reply = session.handle(line)
        except (EOFError, KeyboardInterrupt):
            console.print("\nbye", style="dim")
            return
        except Exception as e:  # a bug: say so in one line and keep the session alive
            console.print(f"internal error ({type(e).__name__}: {e}); please report it", style="red", markup=False)
            continue
        render(console, reply, with_question=False)
        if reply.quit:
            return


def _read_plain(stdin) -> str:
    line = stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\r\n")


def print_story_file(session: ChatSession, path: str | Path, console) -> StoryScore:
    """Run a story file (see `story_file_replies`), print one answer per question with its grade and,
    at the end, the accuracy; returns the score."""
    from rich.text import Text

    score = StoryScore()
    for number, line, reply in story_file_replies(session, path):
        score.add(reply)
        if reply.kind == "rejected":
            console.print(Text(f"line {number}: {line}\n  {reply.text}", style="yellow"), soft_wrap=True)
        elif reply.kind == "answer":
            render(console, Reply("answer", reply.answers), with_question=True)
        elif reply.kind != "fed":
            render(console, reply)
    console.print(score.summary(), style="bold", highlight=False, soft_wrap=True)
    return score
