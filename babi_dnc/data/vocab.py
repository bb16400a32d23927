"""Words: the tokenizer, answer words, and the vocabulary that maps words to ids (and back, and to JSON)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import VocabularyError

PAD_ID = 0  # the id in padded steps (word 0: padding is masked everywhere)

SLOT_MARKER = "\x01"  # marks an answer slot while a whole story is tokenized in one go (encoding.py)
_SYMBOL = re.compile(r"[^\w\s]|_")  # every visible character that is not a letter or digit
_OTHER_SYMBOL = re.compile(r"[^\w\s.?\x01]|_")  # ... other than '.', '?' and SLOT_MARKER


def tokenize(text: str) -> list[str]:
    """Lower-case words (runs of letters and digits); every other visible character ('.', '?', ...)
    is a word of its own.

    tokenize("Mary moved to the bathroom.") -> ["mary", "moved", "to", "the", "bathroom", "."]
    """
    text = text.lower().replace(".", " . ").replace("?", " ? ")  # bAbI's only symbols: fast path
    if _OTHER_SYMBOL.search(text):
        text = _SYMBOL.sub(r" \g<0> ", text)
    return text.split()


def answer_words(answer: str) -> list[str]:
    """The words of one answer: "apple,football" -> ["apple", "football"], "n,e" -> ["n", "e"]."""
    if "," not in answer:
        return [answer.strip().lower()]
    return [w.strip() for w in answer.lower().split(",")]


class Vocabulary:
    """Sorted word list; ids 0..size-1 are words, `unk_id == size` is the explicit unknown.

    The unknown id is one past the end, so a one-hot input of `size` columns maps it to the all-zero
    vector (the input stays exactly `size`-way, 159 on en-10k) and an embedding needs `size + 1` rows.
    Words outside the vocabulary are never merged into a known word. `pad_id == 0` (a real word: padding
    is masked everywhere).
    """

    ANSWER = "-"
    UNK = "<unk>"
    FORMAT = "babi-dnc-vocabulary/1"

    def __init__(self, words: Iterable[str]):
        self.words: list[str] = sorted(set(words))
        if not self.words:
            raise VocabularyError("a vocabulary needs at least one word, so build it from training data.")
        self.index: dict[str, int] = {w: i for i, w in enumerate(self.words)}

    @property
    def size(self) -> int:
        return len(self.words)

    @property
    def unk_id(self) -> int:
        return len(self.words)

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def answer_id(self) -> int:
        """Id of '-', the answer slot (the unknown id when the vocabulary lacks it)."""
        return self.index.get(self.ANSWER, self.unk_id)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def __hash__(self) -> int:
        return hash(tuple(self.words))

    def __repr__(self) -> str:
        return f"Vocabulary(size={self.size}, unk_id={self.unk_id})"

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Word ids; a word outside the vocabulary gets `unk_id`."""
        unk = self.unk_id
        return [self.index.get(t, unk) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words of ids; `unk_id` and anything out of range decode to "<unk>"."""
        n = self.size
        return [self.words[i] if 0 <= i < n else self.UNK for i in (int(i) for i in ids)]

    def unknown(self, tokens: Iterable[str]) -> list[str]:
        """The distinct tokens that are not in the vocabulary, sorted."""
        return sorted({t for t in tokens if t not in self.index})

    def fingerprint(self) -> str:
        """sha256 of the word list: equal vocabularies have equal fingerprints."""
        return hashlib.sha256("\n".join(self.words).encode()).hexdigest()

    def to_dict(self) -> dict:
        return {"format": self.FORMAT, "words": list(self.words), "size": self.size,
                "unk_id": self.unk_id, "pad_id": self.pad_id, "answer": self.ANSWER}

    def to_json(self) -> str:
        """A JSON text (for RUN/vocab.json); `Vocabulary.from_json` reads it back."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, data: str | bytes | dict | list) -> Vocabulary:
        """Read `to_json()` output (text, or the parsed dict), or a plain list of words.

        Raises VocabularyError when the words are not a sorted list of distinct strings, since ids would
        silently shift.
        """
        try:
            if isinstance(data, str | bytes):
                data = json.loads(data)
            words = data["words"] if isinstance(data, dict) else data
            ok = isinstance(words, list) and all(isinstance(w, str) for w in words)
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise VocabularyError("the vocabulary is not valid JSON with a list of words, so re-create it "
                                  "from the training data or restore vocab.json from the run.")
        if words != sorted(set(words)):
            raise VocabularyError("the vocabulary's words are not sorted and distinct, so the word ids "
                                  "would not match; restore the run's original vocab.json.")
        if isinstance(data, dict) and data.get("size", len(words)) != len(words):
            raise VocabularyError("the vocabulary's size does not match its word list, so restore the "
                                  "run's original vocab.json.")
        return cls(words)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        return cls.from_json(Path(path).read_text())
