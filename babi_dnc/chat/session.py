"""The story and the model: each line checked, split into sentences and questions, fed with the recurrent
state carried over, and every question answered at its '-' slots."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import torch
from torch import nn

from ..data import Vocabulary, answer_words, tokenize
from ..errors import UserError
from .replies import Answer, Rejected, Reply, detokenize

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


def answer_slots(tokens: list[str]) -> int:
    """The automatic number of answer slots of a question (tokens, '?' included): 2 for task 19's
    "how do you go from X to Y ?", else 1."""
    return 2 if tokens[:4] == ["how", "do", "you", "go"] else 1


def suggest(word: str, vocab: Vocabulary, n: int = 3) -> list[str]:
    """The known words closest to `word` (difflib ratio), best first; punctuation is never suggested."""
    words = [w for w in vocab.words if w.isalnum()]
    return difflib.get_close_matches(word, words, n=n, cutoff=0.6)


class StorySession:
    """A story told to a model, one line at a time: checks each line, feeds it with the state carried
    over, and answers its questions (see the package docstring for the answer slots).

    Args:
        model: a bAbI model (`models.BabiModel`, DNC or LSTM): model(ids [1, T], state) -> (logits [1, T, V],
            state), model.trace(ids, state) -> (logits, state, trace), model.has_memory.
        vocab: the vocabulary the model was trained with.
        config: limits and display settings.
    """

    def __init__(self, model: nn.Module, vocab: Vocabulary, config: ChatConfig | None = None):
        self.model, self.vocab = model.eval(), vocab
        self.config = config or ChatConfig()
        self.device = next(model.parameters()).device
        self.has_memory = model.has_memory
        reader = getattr(model, "reader", None)  # a backward reader (reader.py)
        if getattr(reader, "scope", "question") != "question":
            raise UserError("this model's backward reader reads each story from its end, past every question, "
                            "which chat cannot give it; chat with a model trained without --reader-scope story "
                            "(its eval numbers are a comparison only).")
        self.reads_back = reader is not None
        self.slots: int | None = None  # /slots N; None = auto
        self.reset()

    def reset(self) -> None:
        """Forget the story: a fresh recurrent state and memory."""
        self.state = None
        self.story: list[tuple[str, list[Answer]]] = []  # (line as typed, its answers)
        self.tokens: list[str] = []  # every token fed since the reset, '-' slots included
        self.pending: list[str] = []  # told but not yet fed: a backward reader waits for the next question
        self._traces: list[tuple[list[str], dict]] = []  # (tokens, trace [1, T, ...]) per fed line

    def _run(self, tokens: list[str]) -> torch.Tensor:
        """Feed tokens, carrying the state; returns the answer probabilities [T, V]. A model with a backward
        reader is fed whole question segments, as in training and eval (up to a question's last '-'); what
        follows waits for the next question, and its rows of the result are zero."""
        if not self.reads_back:
            return self._step(tokens)
        told = self.pending + tokens
        cut = max((i + 1 for i, t in enumerate(told) if t == SLOT), default=0)
        held, self.pending = len(self.pending), told[cut:]
        probs = self._step(told[:cut])[held:] if cut else torch.zeros(0, self.vocab.size, device=self.device)
        return torch.cat([probs, probs.new_zeros(len(tokens) - len(probs), self.vocab.size)])  # [T, V]

    @torch.inference_mode()
    def _step(self, tokens: list[str]) -> torch.Tensor:
        """Feed tokens to the model, carrying the state; returns the answer probabilities [T, V]."""
        ids = torch.tensor([self.vocab.encode(tokens)], device=self.device)  # [1, T]
        if self.has_memory:
            logits, self.state, trace = self.model.trace(ids, state=self.state)
            self._traces.append((list(tokens), trace))
            while sum(len(t) for t, _ in self._traces) > self.config.trace_steps and len(self._traces) > 1:
                self._traces.pop(0)
        else:
            logits, self.state = self.model(ids, state=self.state)
        self.tokens.extend(tokens)
        return logits[0].float().softmax(-1)  # [T, V]

    def _has_statement(self, text: str) -> bool:
        """Does the (accepted) line hold a statement?"""
        return any(slots < 0 for _, slots in self._split(tokenize(text)))

    def _too_long(self, length: int) -> Rejected:
        return Rejected(f"that line is too long ({length} characters, at most {self.config.max_chars}); bAbI "
                        "sentences are short, so split it")

    def refuse_long_line(self, length: int) -> Reply:
        """The reply to a line of `length` characters that was too long to be read whole (stories.capped_lines)."""
        return Reply.say("rejected", f"{self._too_long(length)} (not fed)")

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
            raise self._too_long(len(text))
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
                               "separated by ','")
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
                               "(\"What is Mary carrying? - -\")")
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
