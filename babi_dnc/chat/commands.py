"""The chat as the user meets it: input lines and "/" commands, bAbI test stories told as examples and
graded, the banner."""

from __future__ import annotations

import contextlib
import difflib
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import viz
from ..data import (
    ENV_DATA,
    TASK_NAMES,
    Vocabulary,
    parse_babi_file,
    parse_task_spec,
    resolve_source,
    story_lines,
    task_file,
    tokenize,
)
from ..errors import CheckpointError, DataError, UserError
from ..models import describe_model
from ..runs import LoadedRun, expand, load_run
from .replies import Rejected, Reply, verdict
from .session import ChatConfig, StorySession

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


class ChatSession(StorySession):
    """A chat: the story session, plus commands ("/help", "/example", ...) and bAbI examples to follow.

    Args:
        model, vocab, config: as StorySession.
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
        self.set_name, self.tasks, self.data_dir = set_name, tasks or [1], data_dir
        self.rng = random.Random(seed)
        self.description = description
        self._stories: dict[int, list[dict]] = {}  # test stories per task, loaded on first /example
        super().__init__(model, vocab, config)

    @classmethod
    def from_run(cls, run_dir: str | Path, tag: str = "best", device: str = "cpu",
                 data_dir: str | Path | None = None, seed: int | None = None,
                 config: ChatConfig | None = None) -> ChatSession:
        """Load checkpoint `tag` ("best" or "latest") of a bAbI run; a folder of seed-N runs gives seed 0;
        `pretrained:NAME` is a shipped model (pretrained.py).

        /example data: `data_dir`, else $BABI_DNC_DATA, else the run's training data folder if it still
        exists, else the Hugging Face Hub.
        """
        if tag not in ("best", "latest"):
            raise CheckpointError(f"--checkpoint must be best or latest, not {tag!r}.")
        run = load_run(expand(run_dir)[0], tag=tag, device=device)
        data = run.data
        if data_dir is None and not os.environ.get(ENV_DATA) and data.data_dir:
            data_dir = data.data_dir if Path(data.data_dir).exists() else None
        try:
            tasks = parse_task_spec(data.tasks)
        except DataError:
            tasks = None
        return cls(run.model, run.vocab, config=config, set_name=data.set_name, tasks=tasks, data_dir=data_dir,
                   seed=seed, description=describe_run(run))

    def reset(self) -> None:
        """Forget the story (a fresh recurrent state and memory) and any example being told."""
        super().reset()
        self.example: _Example | None = None

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
            f"memory: {N} slots (columns{binned}); rows: the last line's steps; shades '{viz.SHADES[1:]}' "
            "= a quarter to all of the panel's largest value",
            f"write weighting (largest {float(write.max()):.2f})",
            ruler, viz.text_heatmap(write, cols, [f"{t:>{width}}" for t in labels]),
            f"read weighting{heads} (largest {float(read.max()):.2f})",
            ruler, viz.text_heatmap(read, cols, [f"{t:>{width}}" for t in labels]),
            f"usage after the last step (largest {float(usage.max()):.2f}; "
            f"{int((usage > 0.5).sum())} of {N} slots above 0.5)",
            ruler, viz.text_heatmap(usage, cols, [f"{'usage':>{width}}"]),
        ])

    def _memory_png(self, path: Path) -> Reply:
        """Save the whole story's memory trace (every quantity, every step kept) with viz.plot_memory."""
        tokens = [t for ts, _ in self._traces for t in ts]
        trace = {k: torch.cat([tr[k] for _, tr in self._traces], dim=1) for k in self._traces[0][1]}
        try:
            viz.plot_memory(trace, tokens=tokens, path=path, title=f"memory over the story ({len(tokens)} steps)")
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

    def banner(self) -> str:
        intro = "Tell it a story, one sentence per line; end a question with '?'. /help for commands, /quit to leave."
        return f"{self.description}\n{intro}" if self.description else intro


COMMANDS: dict[str, Callable[[ChatSession, str], Reply]] = {
    "help": ChatSession.cmd_help, "?": ChatSession.cmd_help, "reset": ChatSession.cmd_reset,
    "example": ChatSession.cmd_example, "next": ChatSession.cmd_next, "story": ChatSession.cmd_story,
    "memory": ChatSession.cmd_memory, "slots": ChatSession.cmd_slots, "words": ChatSession.cmd_words,
    "quit": ChatSession.cmd_quit, "exit": ChatSession.cmd_quit, "q": ChatSession.cmd_quit,
}


def describe_run(run: LoadedRun) -> str:
    """ "DNC (memory 32 x 32, 2 read heads) from RUN, step 4000, validation error 0.3%, trained on bAbI en-10k
    tasks all (task 3 from en (1k))": the parenthesis lists how the training stories differed from the set's files."""
    error = run.metrics.get("error")
    error_text = f", validation error {error:.1%}" if isinstance(error, int | float) else ""
    changes = run.config.get("training_data") or []
    change_text = f" ({', '.join(changes)})" if changes else ""
    task_text = f", trained on bAbI {run.data.set_name} tasks {run.data.tasks}{change_text}"
    return f"{describe_model(run.model_config)} from {run.run_dir}, step {run.step}{error_text}{task_text}"
