"""bAbI QA tasks v1.2 for the DNC: sources, raw-file parser, the paper's encoding, datasets, batches.

Where the data comes from (`load_babi(data_dir=...)`, first match wins):
  1. `data_dir`, else the environment variable `BABI_DNC_DATA`: a local `tasks_1-20_v1-2` folder, its
     parent folder, or the original `tasks_1-20_v1-2.tar.gz`;
  2. the Hugging Face Hub: the dataset repo `facebook/babi_qa` keeps the original archive
     `data/tasks_1-20_v1-2.tar.gz`; `huggingface_hub` downloads it once into its cache (and honours
     `HF_HUB_OFFLINE`). Archives are verified (readable gzip tar, expected member layout, sha256 reported)
     and read member by member with `tarfile`, never unpacked to disk.

The encoding is the paper's (Graves et al. 2016, Methods, "bAbI"): one story is one sequence of words,
line numbers removed, lower-cased, '.' and '?' as words of their own, and after every question one '-'
per answer word (answers like "apple,football" are split on ','). The model's output at each '-' is its
answer word; the loss is taken only there. On en-10k the vocabulary is 156 words plus '.', '?' and '-':
159 symbols, the size of the paper's one-hot input and softmax output.

Stories are `datasets.Dataset` rows, tokenized with `.map` (batched) and cached next to the parsed
stories in `cache_dir` (default: `$BABI_DNC_CACHE`, else `<HF datasets cache>/babi_dnc`), keyed by the
sha256 of the files, so a second `load_babi` takes a fraction of a second.

    data = load_babi("en-10k", tasks="1,2,5-7", data_dir="../shared/data/babi/tasks_1-20_v1-2")
    for batch in iterate_batches(data.train, batch_size=32, seed=0, epoch=0):
        batch["ids"], batch["mask"], batch["targets"]    # [B, T] each
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import uuid
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets.table import InMemoryTable
from huggingface_hub import hf_hub_download

from babi_dnc.errors import DataError, VocabularyError
from babi_dnc.hashing import sha256_file

log = logging.getLogger(__name__)

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
ARCHIVE_ROOT = "tasks_1-20_v1-2"
HUB_REPO = "facebook/babi_qa"
HUB_FILENAME = "data/tasks_1-20_v1-2.tar.gz"
ENV_DATA = "BABI_DNC_DATA"
ENV_CACHE = "BABI_DNC_CACHE"
PAD_ID = 0
IGNORE_INDEX = -100  # targets at steps without an answer (torch's cross_entropy default ignore_index)
# Bump when parsing or encoding changes: part of every cache key.
FORMAT_VERSION = 1


class TaskSpecError(DataError):
    """A --tasks value that is not `all` or a list like `1,2,5-7` of tasks 1..20."""


class MalformedLineError(DataError):
    """A line of a bAbI file that does not follow the format; knows the file and the line number."""

    def __init__(self, file: str, line_number: int, problem: str):
        self.file, self.line_number, self.problem = file, line_number, problem
        super().__init__(
            f"{file}:{line_number}: {problem} (bAbI lines are 'ID text' or "
            f"'ID question<TAB>answer<TAB>supporting ids'), so fix or re-download this file."
        )


class MissingDataWarning(UserWarning):
    """Some task files of the chosen set are absent; the loader works with the ones that are there."""


class UnknownWordsWarning(UserWarning):
    """The data holds words outside the given vocabulary; they get the explicit unknown id."""


# ------------------------------------------------------------------------------------------ words


_SYMBOL = re.compile(r"[^\w\s]|_")  # every visible character that is not a letter or digit
_OTHER_SYMBOL = re.compile(r"[^\w\s.?\x01]|_")  # ... other than '.', '?' and the answer-slot marker
_SLOT = "\x01"  # marks an answer slot while a whole story is tokenized in one go (see encode_story)


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


# ------------------------------------------------------------------------------------------ tasks


_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


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


def task_file(set_name: str, task: int, split: str) -> str:
    """Path of a task file inside tasks_1-20_v1-2, e.g. "en-10k/qa8_lists-sets_train.txt"."""
    return f"{set_name}/qa{task}_{TASK_NAMES[task]}_{split}.txt"


def _check_set(set_name: str) -> None:
    if set_name not in SETS:
        raise DataError(f"unknown bAbI set {set_name!r}: choose one of {', '.join(SETS)}.")


# ------------------------------------------------------------------------------------------ parser


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
    Blank lines are skipped. Anything else raises MalformedLineError (a DataError) naming file:line.
    """
    if isinstance(source, str | Path) and not isinstance(source, bytes):
        path = Path(source)
        name = name or str(path)
        try:
            source = path.read_bytes()
        except OSError as e:
            raise DataError(f"cannot read bAbI file {path} ({e.strerror}), so check the path.") from None
    name = name or "<lines>"
    if isinstance(source, bytes):
        try:
            lines: Iterable[str] = source.decode("utf-8").replace("\r\n", "\n").split("\n")
        except UnicodeDecodeError as e:
            raise DataError(f"{name} is not UTF-8 text (byte {e.start}), so re-download it.") from None
    else:
        lines = (line.rstrip("\r\n") for line in source)

    stories: list[dict] = []
    sentences: list[str] = []
    story: dict | None = None
    line_to_sentence: dict[int, int] = {}  # line id -> index into the story's sentences
    last_id = 0
    for number, line in enumerate(lines, start=1):
        id_text, _, text = line.partition(" ")
        if not id_text.isdigit() or not text or text.isspace():
            if not line or line.isspace():  # blank lines (and a final newline) are skipped
                continue
            raise MalformedLineError(name, number, "expected a line id, a space and text")
        line_id = int(id_text)
        if line_id == 1:
            sentences = []
            story = {"sentences": sentences, "questions": [], "answers": [], "supporting": [],
                     "question_after": []}
            stories.append(story)
            line_to_sentence = {}
        elif story is None or line_id != last_id + 1:
            expected = "1" if story is None else f"{last_id + 1} or 1 (a new story)"
            raise MalformedLineError(name, number, f"line id {line_id} where {expected} was expected")
        last_id = line_id
        if "\t" not in text:  # a statement
            line_to_sentence[line_id] = len(sentences)
            sentences.append(text.strip())
            continue
        fields = text.split("\t")
        if len(fields) > 3:
            raise MalformedLineError(name, number, f"{len(fields) - 1} tabs in a question line, not 2")
        question, answer = fields[0].strip(), fields[1].strip()
        if not question or not answer or ("," in answer and "" in answer_words(answer)):
            raise MalformedLineError(name, number, "a question line needs a question and an answer")
        support = fields[2].split() if len(fields) == 3 else []
        try:
            if support and not "".join(support).isdigit():
                raise KeyError
            support_index = [line_to_sentence[int(s)] for s in support]
        except KeyError:
            raise MalformedLineError(name, number, f"supporting ids {fields[2].strip()!r} do not all name "
                                     "earlier statements of this story") from None
        story["questions"].append(question)
        story["answers"].append(answer)
        story["supporting"].append(support_index)
        story["question_after"].append(len(sentences))
    return stories


# ------------------------------------------------------------------------------------------ encoding


def encode_story(story: dict, vocab: Vocabulary | None = None) -> dict:
    """The paper's encoding of one story (a dict as from `parse_babi_file`).

    Sentences and questions in their order, tokenized; after each question one '-' per answer word.
    Returns tokens (list[str]), length, answer_positions (token index of every '-'), answer_question
    (which question each '-' answers), answer_words (the target word of each '-'); with a vocabulary
    also ids and answer_ids (unknown words -> vocab.unk_id). Without `question_after` the questions
    come after all sentences; a missing or empty answer gives one '-' (for stories typed by a user).
    """
    questions = story["questions"]
    out = _encode(story["sentences"], questions, story.get("answers") or [""] * len(questions),
                  story.get("question_after") or [len(story["sentences"])] * len(questions))
    if vocab is not None:
        out["ids"] = vocab.encode(out["tokens"])
        out["answer_ids"] = vocab.encode(out["answer_words"])
    return out


def _encode(sentences: list[str], questions: list[str], answers: list[str], after: list[int]) -> dict:
    """encode_story without the vocabulary: the story is joined, with a marker per answer slot, and
    tokenized in one go; the markers become '-'."""
    if any(_SLOT in x for x in sentences) or any(_SLOT in x for x in questions):
        sentences = [x.replace(_SLOT, " ") for x in sentences]
        questions = [x.replace(_SLOT, " ") for x in questions]
    pieces: list[str] = []
    targets: list[str] = []
    which: list[int] = []
    s = 0
    for q, question in enumerate(questions):
        end = max(s, after[q])
        pieces.extend(sentences[s:end])
        s = end
        pieces.append(question)
        words = answer_words(answers[q]) if answers[q] else [""]
        pieces.extend([_SLOT] * len(words))
        targets.extend(words)
        which.extend([q] * len(words))
    pieces.extend(sentences[s:])
    tokens = tokenize(" ".join(pieces))
    positions: list[int] = []
    p = -1
    for _ in targets:
        p = tokens.index(_SLOT, p + 1)
        tokens[p] = Vocabulary.ANSWER
        positions.append(p)
    return {"tokens": tokens, "length": len(tokens), "answer_positions": positions,
            "answer_question": which, "answer_words": targets}


_TOKEN_COLUMNS = ("tokens", "length", "answer_positions", "answer_question", "answer_words")


def _tokens_batch(table: pa.Table) -> pa.Table:
    """Batched `.map` function (Arrow format): the vocabulary-free part of `encode_story`.

    (A returned Arrow table replaces the batch, so the input columns are kept by appending.)
    """
    inputs = [table.column(k).to_pylist() for k in ("sentences", "questions", "answers", "question_after")]
    out: dict[str, list] = {k: [] for k in _TOKEN_COLUMNS}
    for row in zip(*inputs, strict=True):
        enc = _encode(*row)
        for k in _TOKEN_COLUMNS:
            out[k].append(enc[k])
    schema = TOKEN_FEATURES.arrow_schema
    for k in _TOKEN_COLUMNS:
        table = table.append_column(k, pa.array(out[k], type=schema.field(k).type))
    return table


def _ids_of(column: pa.ChunkedArray | pa.Array, value_set: pa.Array, unk_id: int) -> pa.Array:
    """list<string> -> list<int32> of vocabulary ids, unknown words -> unk_id (vectorised in Arrow)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    flat = pc.fill_null(pc.index_in(pc.list_flatten(column), value_set=value_set), unk_id)
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), flat.cast(pa.int32()))


def _ids_batch(table: pa.Table, words: list[str], unk_id: int) -> pa.Table:
    """Batched `.map` function (Arrow format): tokens -> ids, answer_words -> answer_ids."""
    value_set = pa.array(words, type=pa.string())
    ids = _ids_of(table.column("tokens"), value_set, unk_id)
    answer_ids = _ids_of(table.column("answer_words"), value_set, unk_id)
    return table.append_column("ids", ids).append_column("answer_ids", answer_ids)


_INT_LIST = datasets.Sequence(datasets.Value("int32"))
_STR_LIST = datasets.Sequence(datasets.Value("string"))
RAW_FEATURES = datasets.Features({
    "task": datasets.Value("int32"),
    "story_id": datasets.Value("int32"),
    "sentences": _STR_LIST,
    "questions": _STR_LIST,
    "answers": _STR_LIST,
    "supporting": datasets.Sequence(_INT_LIST),
    "question_after": _INT_LIST,
})
TOKEN_FEATURES = datasets.Features({
    **RAW_FEATURES,
    "tokens": _STR_LIST,
    "length": datasets.Value("int32"),
    "answer_positions": _INT_LIST,
    "answer_question": _INT_LIST,
    "answer_words": _STR_LIST,
})
FEATURES = datasets.Features({**TOKEN_FEATURES, "ids": _INT_LIST, "answer_ids": _INT_LIST})


# ------------------------------------------------------------------------------------------ sources


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digest_of_files(file_sha: dict[str, str]) -> str:
    """sha256 of the `sha256sum` listing of the files, sorted by path (bytewise).

    Equals `cd tasks_1-20_v1-2 && sha256sum <the files> | LC_ALL=C sort -k 2 | sha256sum`.
    """
    listing = "".join(f"{file_sha[name]}  {name}\n" for name in sorted(file_sha))
    return _sha256(listing.encode())


_MEMBER = re.compile(r"^(?:\./)?(?:tasks_1-20_v1-2/)?(en|en-10k)/(qa(\d+)_([a-z-]+)_(train|test)\.txt)$")


def _member_file(member_name: str) -> str | None:
    """Archive member name -> "en-10k/qa1_..._train.txt" for the task files we know, else None."""
    m = _MEMBER.match(member_name)
    if not m:
        return None
    set_name, task, name = m.group(1), int(m.group(3)), m.group(4)
    if TASK_NAMES.get(task) != name:
        return None
    return f"{set_name}/{m.group(2)}"


@dataclass
class Source:
    """Where the files come from: kind "local-dir" | "local-tar" | "hub", a path, and (after
    `read_set`) the sha256: of the archive for a tar, or for a folder the sha256 of the sorted
    `sha256sum` listing of the task files used (see `_digest_of_files`)."""

    kind: str
    path: Path
    revision: str | None = None
    sha256: str | None = None

    def describe(self) -> dict:
        d = {"kind": self.kind, "path": str(self.path), "sha256": self.sha256,
             "sha256_of": "archive" if self.kind != "local-dir" else "sha256sum listing of the used files"}
        if self.revision:
            d["revision"] = self.revision
        return d

    def read_set(self, set_name: str) -> dict[str, bytes]:
        """Bytes of every task file of `set_name` that exists, keyed like "en-10k/qa1_..._train.txt"."""
        if self.kind == "local-dir":
            files = {}
            for task in TASK_NAMES:
                for split in SPLITS:
                    name = task_file(set_name, task, split)
                    if (self.path / name).is_file():
                        files[name] = (self.path / name).read_bytes()
            self.sha256 = _digest_of_files({k: _sha256(v) for k, v in files.items()})
            return files
        self.sha256 = sha256_file(self.path)
        return _read_tar(self.path, set_name)


def _read_tar(path: Path, set_name: str) -> dict[str, bytes]:
    """One sequential pass over a .tar.gz: verify it and return the task files of one set."""
    files: dict[str, bytes] = {}
    known = 0
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                name = _member_file(member.name)
                if name is None or not member.isfile():
                    continue
                known += 1
                if name.startswith(set_name + "/"):
                    f = tar.extractfile(member)
                    files[name] = f.read() if f is not None else b""
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{path} is not a readable tar.gz archive ({type(e).__name__}: {e}), so "
                        "re-download it or pass the unpacked tasks_1-20_v1-2 folder.") from None
    if known == 0:
        raise DataError(f"{path} does not hold bAbI v1.2 task files (expected members like "
                        f"{ARCHIVE_ROOT}/en-10k/qa1_single-supporting-fact_train.txt), so pass the "
                        "original tasks_1-20_v1-2.tar.gz.")
    return files


def _hub_archive() -> Source:
    """Download (or find in the cache) the original archive on the Hugging Face Hub."""
    try:
        path = Path(hf_hub_download(repo_id=HUB_REPO, repo_type="dataset", filename=HUB_FILENAME))
    except Exception as e:  # network, offline mode, auth, a moved file: the same advice for all
        if type(e).__name__ in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
            offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
            reason = ("HF_HUB_OFFLINE is set and it is not in the local cache" if offline else
                      "the Hub cannot be reached and it is not in the local cache")
        else:
            text = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
            reason = f"{type(e).__name__}: {text}" if text else type(e).__name__
        raise DataError(f"could not get the bAbI archive {HUB_FILENAME} from the Hugging Face Hub dataset "
                        f"{HUB_REPO} ({reason}), so pass --data-dir PATH or set {ENV_DATA} to a local "
                        f"{ARCHIVE_ROOT} folder or its .tar.gz.") from None
    parts = path.parts
    revision = parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else None
    return Source("hub", path, revision=revision)


def resolve_source(data_dir: str | Path | None = None) -> Source:
    """`data_dir`, else $BABI_DNC_DATA, else the Hub; a folder may be tasks_1-20_v1-2 or its parent."""
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get(ENV_DATA) or None
        if data_dir is None:
            return _hub_archive()
    path = Path(data_dir).expanduser()
    if path.is_file():
        return Source("local-tar", path.resolve())
    if path.is_dir():
        for root in (path, path / ARCHIVE_ROOT):
            if any((root / s).is_dir() for s in SETS):
                return Source("local-dir", root.resolve())
        for archive in (path / f"{ARCHIVE_ROOT}.tar.gz", path / f"{ARCHIVE_ROOT}.tgz"):
            if archive.is_file():
                return Source("local-tar", archive.resolve())
        raise DataError(f"{path} holds no bAbI data (no en/ or en-10k/ folder, no {ARCHIVE_ROOT} folder "
                        f"or {ARCHIVE_ROOT}.tar.gz), so point --data-dir at the {ARCHIVE_ROOT} folder, "
                        "its parent or the .tar.gz.")
    raise DataError(f"bAbI data path {path} does not exist, so point --data-dir (or {ENV_DATA}) at the "
                    f"{ARCHIVE_ROOT} folder, its parent or the .tar.gz.")


# ------------------------------------------------------------------------------------------ datasets


def _cache_root(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    return Path(datasets.config.HF_DATASETS_CACHE) / "babi_dnc"


@contextlib.contextmanager
def _quiet_datasets():
    """Hide datasets' progress bars while we build (restored afterwards)."""
    was_disabled = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _raw_dataset(files: dict[str, bytes], names: list[str]) -> datasets.Dataset:
    """Parse the given task files into one Dataset of stories (file order, then story order)."""
    columns: dict[str, list] = {k: [] for k in RAW_FEATURES}
    for name in names:
        task = int(re.search(r"/qa(\d+)_", name).group(1))
        for story_id, story in enumerate(parse_babi_file(files[name], name=name)):
            columns["task"].append(task)
            columns["story_id"].append(story_id)
            for k in ("sentences", "questions", "answers", "supporting", "question_after"):
                columns[k].append(story[k])
    table = pa.table(columns, schema=RAW_FEATURES.arrow_schema)  # straight to Arrow: fast
    return datasets.Dataset(InMemoryTable(table), info=datasets.DatasetInfo(features=RAW_FEATURES))


def _cached_raw(files: dict[str, bytes], names: list[str], key: str, root: Path | None) -> datasets.Dataset:
    """The parsed stories, saved once under `root/key` with save_to_disk and memory-mapped afterwards."""
    if root is None or not names:
        return _raw_dataset(files, names)
    target = root / key
    if (target / "state.json").is_file():
        try:
            return datasets.load_from_disk(str(target))
        except Exception as e:  # noqa: BLE001 -- a broken cache entry is rebuilt
            log.warning("rebuilding the bAbI cache entry %s (%s)", target, e)
            shutil.rmtree(target, ignore_errors=True)
    raw = _raw_dataset(files, names)
    tmp = root / f".{key}.{uuid.uuid4().hex}.tmp"
    try:
        root.mkdir(parents=True, exist_ok=True)
        raw.save_to_disk(str(tmp))
        try:
            os.rename(tmp, target)  # atomic: concurrent loaders (e.g. DDP ranks) keep the first one
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        return datasets.load_from_disk(str(target))
    except OSError as e:
        log.warning("bAbI cache %s is not writable (%s): keeping the data in memory", root, e)
        shutil.rmtree(tmp, ignore_errors=True)
        return raw


def _key(*parts: object) -> str:
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:24]


def _empty(features: datasets.Features) -> datasets.Dataset:
    return datasets.Dataset.from_dict({k: [] for k in features}, features=features)


def _tokenized(raw: datasets.Dataset, key: str) -> datasets.Dataset:
    if len(raw) == 0:
        return _empty(TOKEN_FEATURES)
    out = raw.with_format("arrow").map(_tokens_batch, batched=True, batch_size=2000, features=TOKEN_FEATURES,
                                       new_fingerprint=_key(key, "tokens", FORMAT_VERSION), desc="tokenizing")
    return out.with_format(None)


def _with_ids(ds: datasets.Dataset, vocab: Vocabulary, key: str) -> datasets.Dataset:
    if len(ds) == 0:
        return _empty(FEATURES)
    out = ds.with_format("arrow").map(
        _ids_batch, batched=True, batch_size=2000, features=FEATURES,
        fn_kwargs={"words": vocab.words, "unk_id": vocab.unk_id},
        new_fingerprint=_key(key, "ids", FORMAT_VERSION, vocab.fingerprint()), desc="word ids")
    return out.with_format(None)


def build_vocabulary(dataset: datasets.Dataset) -> Vocabulary:
    """Every token and answer word of the (tokenized) stories, plus '-': the paper's vocabulary."""
    words = {Vocabulary.ANSWER}
    for column in ("tokens", "answer_words"):
        words.update(pc.unique(pc.list_flatten(dataset.data.column(column).combine_chunks())).to_pylist())
    return Vocabulary(w for w in words if w)


def split_train_valid(tasks: Sequence[int], valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, valid) given the task of every training story, in file order.

    For each task, round(valid_fraction * stories) stories (at least one when the fraction is positive
    and the task has two or more) go to validation, drawn with numpy's generator seeded by (seed, task):
    a task's split does not depend on which other tasks are loaded.
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise DataError(f"valid_fraction must be in [0, 1), not {valid_fraction}.")
    tasks = np.asarray(tasks)
    is_valid = np.zeros(len(tasks), dtype=bool)
    for task in np.unique(tasks):
        rows = np.flatnonzero(tasks == task)
        k = int(round(valid_fraction * len(rows)))
        if valid_fraction > 0 and len(rows) >= 2:
            k = min(max(k, 1), len(rows) - 1)
        pick = np.random.default_rng([int(seed), int(task)]).permutation(len(rows))[:k]
        is_valid[rows[pick]] = True
    return np.flatnonzero(~is_valid), np.flatnonzero(is_valid)


@dataclass
class BabiData:
    """Loaded bAbI: three Datasets (one row per story), the vocabulary, and where it all came from."""

    train: datasets.Dataset
    valid: datasets.Dataset
    test: datasets.Dataset
    vocab: Vocabulary
    source: dict
    missing: list[str]
    set_name: str = "en-10k"
    tasks: list[int] = field(default_factory=lambda: list(TASK_NAMES))
    valid_fraction: float = 0.1
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    def splits(self) -> dict[str, datasets.Dataset]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def config(self) -> dict:
        """What `load_babi` needs to rebuild this data (for RUN/config.json)."""
        return {"set_name": self.set_name, "tasks": list(self.tasks), "valid_fraction": self.valid_fraction,
                "seed": self.seed, "source": dict(self.source)}


def load_babi(set_name: str = "en-10k", tasks: str | int | Iterable[int] = "all",
              data_dir: str | Path | None = None, valid_fraction: float = 0.1, seed: int = 0,
              vocab: Vocabulary | None = None, *, cache_dir: str | Path | None = None) -> BabiData:
    """Load bAbI `set_name` ("en-10k" or "en"), tasks `tasks` ("all", "1,2,5-7", or ints).

    Returns BabiData with train/valid/test Datasets, one row per story, columns
      task, story_id (index within its task file), sentences, questions, answers, supporting,
      question_after (see parse_babi_file), tokens, ids, length, answer_positions (token index of
      every '-'), answer_ids, answer_question (question index of every '-'), answer_words.
    valid = `valid_fraction` of each task's training stories (seeded by `seed`, see split_train_valid);
    the test files are never used for training or choices. The vocabulary comes from the training
    files of all 20 tasks of the set (train and valid rows, whatever `tasks` says), unless `vocab` is
    given (e.g. the one saved with a checkpoint); words outside it get `vocab.unk_id`.
    Missing task files are listed in `.missing` and warned about (MissingDataWarning); a task whose
    training file is missing keeps its test rows. Raises DataError when nothing requested is there.
    `cache_dir`: where parsed and tokenized stories are cached (None: $BABI_DNC_CACHE, else the
    datasets cache; False: no cache, all in memory).
    """
    _check_set(set_name)
    tasks = parse_task_spec(tasks)
    split_train_valid([], valid_fraction, seed)  # validates the fraction before any work
    source = resolve_source(data_dir)
    files = source.read_set(set_name)
    expected = {split: [task_file(set_name, t, split) for t in TASK_NAMES] for split in SPLITS}
    missing = [n for split in SPLITS for n in expected[split] if n not in files]
    requested = [task_file(set_name, t, s) for t in tasks for s in SPLITS]
    if not any(n in files for n in requested):
        raise DataError(f"none of the requested bAbI files ({set_name}, tasks {format_task_spec(tasks)}) is in "
                        f"{source.path}, so point --data-dir at a complete {ARCHIVE_ROOT} folder or archive.")
    notes = _missing_notes(set_name, tasks, missing, own_vocab=vocab is None)
    if notes:
        warnings.warn(" ".join(notes), MissingDataWarning, stacklevel=2)

    root = None if cache_dir is False else _cache_root(cache_dir)
    with _quiet_datasets():
        tokenized = {}
        for split in SPLITS:
            names = [n for n in expected[split] if n in files]
            key = _key(set_name, split, FORMAT_VERSION,
                       *(f"{n}={_sha256(files[n])}" for n in names))
            tokenized[split] = _tokenized(_cached_raw(files, names, f"{set_name}-{split}-{key}", root), key)
        if vocab is None:
            if len(tokenized["train"]) == 0:
                raise DataError(f"no {set_name} training file is present, so the vocabulary cannot be "
                                "built: pass a complete data folder or the vocabulary of a trained run.")
            vocab = build_vocabulary(tokenized["train"])
        encoded = {split: _with_ids(tokenized[split], vocab, tokenized[split]._fingerprint)
                   for split in SPLITS}

    train_tasks = np.asarray(encoded["train"].data.column("task").to_numpy())
    train_rows, valid_rows = split_train_valid(train_tasks, valid_fraction, seed)
    wanted = np.isin(train_tasks, tasks)
    test_tasks = np.asarray(encoded["test"].data.column("task").to_numpy())
    data = BabiData(
        train=encoded["train"].select(train_rows[wanted[train_rows]]),
        valid=encoded["train"].select(valid_rows[wanted[valid_rows]]),
        test=encoded["test"].select(np.flatnonzero(np.isin(test_tasks, tasks))),
        vocab=vocab, source=source.describe(), missing=missing, set_name=set_name, tasks=tasks,
        valid_fraction=valid_fraction, seed=seed, notes=notes)
    for split in SPLITS:
        unknown = _unknown_words(encoded[split], vocab.unk_id)
        if unknown:
            shown = ", ".join(unknown[:20]) + (" ..." if len(unknown) > 20 else "")
            warnings.warn(f"{len(unknown)} words of the {set_name} {split} files are outside the vocabulary "
                          f"and map to the unknown id {vocab.unk_id}: {shown}", UnknownWordsWarning,
                          stacklevel=2)
    return data


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


def _missing_notes(set_name: str, tasks: list[int], missing: list[str], own_vocab: bool = True) -> list[str]:
    """What the missing files mean for this load, one sentence each (few, however many files)."""
    def task_of(name: str) -> int:
        return int(re.search(r"/qa(\d+)_", name).group(1))

    train = [n for n in missing if n.endswith("_train.txt") and task_of(n) in tasks]
    test = [n for n in missing if n.endswith("_test.txt") and task_of(n) in tasks]
    others = [n for n in missing if n.endswith("_train.txt") and task_of(n) not in tasks]
    notes = []
    if train:
        notes.append(f"{', '.join(train)} {'is' if len(train) == 1 else 'are'} missing: task"
                     f"{'s' if len(train) > 1 else ''} {format_task_spec(map(task_of, train))} "
                     "will have no training or validation stories (test stories are kept).")
    if test:
        notes.append(f"{', '.join(test)} {'is' if len(test) == 1 else 'are'} missing: task"
                     f"{'s' if len(test) > 1 else ''} {format_task_spec(map(task_of, test))} "
                     "will have no test stories.")
    if own_vocab and (train or others):
        tasks_text = format_task_spec(map(task_of, others))
        extra = f" (also missing: the training files of tasks {tasks_text}, not requested)" if others else ""
        notes.append(f"The vocabulary comes from the {set_name} training files that are present{extra}.")
    return notes


# ------------------------------------------------------------------------------------------ batches


@dataclass
class _Packed:
    """A dataset's batching columns as numpy arrays, without copying the list columns row by row.

    Row i of the dataset is row `rows[i]` of the underlying Arrow table; a list column is kept as the
    table's flat `values` with `offsets`, so row i's list is values[offsets[rows[i]]:offsets[rows[i] + 1]].
    """

    rows: np.ndarray
    length: np.ndarray  # [n] per dataset row, like task and story_id
    task: np.ndarray
    story_id: np.ndarray
    lists: dict[str, tuple[np.ndarray, np.ndarray]]

    def row(self, i: int) -> dict:
        j = self.rows[i]
        row = {"length": int(self.length[i]), "task": int(self.task[i]), "story_id": int(self.story_id[i])}
        for name, (values, offsets) in self.lists.items():
            row[name] = values[offsets[j]:offsets[j + 1]]
        return row

    def counts(self, name: str) -> np.ndarray:
        """Length of list column `name` for every dataset row."""
        return np.diff(self.lists[name][1])[self.rows]

    def sums(self, name: str, flags: np.ndarray) -> np.ndarray:
        """Per dataset row, the sum of `flags` (one per value of list column `name`)."""
        c = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
        offsets = self.lists[name][1]
        return (c[offsets[1:]] - c[offsets[:-1]])[self.rows]

    def last(self, name: str, default: int = -1) -> np.ndarray:
        """Last value of list column `name` for every dataset row (`default` for an empty list)."""
        values, offsets = self.lists[name]
        end = offsets[1:][self.rows]
        has = end > offsets[:-1][self.rows]
        out = np.full(len(self.rows), default, dtype=np.int64)
        out[has] = values[end[has] - 1]
        return out


_PACKED: OrderedDict[str, _Packed] = OrderedDict()
_LIST_COLUMNS = ("ids", "answer_positions", "answer_ids", "answer_question")


def _packed(dataset: datasets.Dataset) -> _Packed:
    """Columns for batching and counting, read once per dataset (by fingerprint) through Arrow."""
    fp = dataset._fingerprint
    if fp in _PACKED:
        _PACKED.move_to_end(fp)
        return _PACKED[fp]
    indices = getattr(dataset, "_indices", None)  # a select()ed dataset: row numbers into dataset.data
    if indices is not None:
        table = dataset.data
        rows = np.asarray(indices.column(0).to_numpy(), dtype=np.int64)
    else:  # (also the fallback) materialise the rows
        table = dataset.select_columns(["length", "task", "story_id", *_LIST_COLUMNS]).with_format("arrow")[:]
        rows = np.arange(table.num_rows, dtype=np.int64)
    lists = {}
    for name in _LIST_COLUMNS:
        col = table.column(name).combine_chunks()
        lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        lists[name] = (pc.list_flatten(col).to_numpy(zero_copy_only=False), offsets)
    scalars = (np.asarray(table.column(c).to_numpy(), dtype=np.int64)[rows] for c in ("length", "task", "story_id"))
    packed = _Packed(rows, *scalars, lists=lists)
    _PACKED[fp] = packed
    while len(_PACKED) > 8:
        _PACKED.popitem(last=False)
    return packed


def collate(rows: Sequence[dict]) -> dict[str, torch.Tensor]:
    """Pad stories (dataset rows) into a batch.

    ids [B,T] long (PAD_ID at padding), mask [B,T] bool (True = real token), targets [B,T] long (answer
    word id at '-' positions, IGNORE_INDEX = -100 elsewhere; an answer word outside the vocabulary has
    the explicit unk id), task [B], story [B] (story_id), question [B,T] long (question index at '-'
    steps, -1 elsewhere), lengths [B]. T is the longest story of the batch.
    """
    if not rows:
        raise ValueError("collate needs at least one row")
    B = len(rows)
    lengths = np.array([len(r["ids"]) for r in rows], dtype=np.int64)
    T = int(lengths.max())
    ids = np.full((B, T), PAD_ID, dtype=np.int64)
    targets = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
    question = np.full((B, T), -1, dtype=np.int64)
    for b, r in enumerate(rows):
        ids[b, :lengths[b]] = r["ids"]
        positions = np.asarray(r["answer_positions"], dtype=np.int64)
        targets[b, positions] = np.asarray(r["answer_ids"], dtype=np.int64)
        question[b, positions] = np.asarray(r["answer_question"], dtype=np.int64)
    mask = np.arange(T)[None, :] < lengths[:, None]
    return {
        "ids": torch.from_numpy(ids),                                       # [B, T]
        "mask": torch.from_numpy(mask),                                     # [B, T]
        "targets": torch.from_numpy(targets),                               # [B, T]
        "task": torch.tensor([int(r["task"]) for r in rows], dtype=torch.long),        # [B]
        "story": torch.tensor([int(r["story_id"]) for r in rows], dtype=torch.long),   # [B]
        "question": torch.from_numpy(question),                             # [B, T]
        "lengths": torch.from_numpy(lengths),                               # [B]
    }


def batch_indices(lengths: Sequence[int] | np.ndarray, batch_size: int, shuffle: bool = True, seed: int = 0,
                  epoch: int = 0, bucket: bool = True, drop_last: bool = False,
                  bucket_batches: int = 50) -> list[np.ndarray]:
    """The batches of one epoch as arrays of row indices; the same (seed, epoch) gives the same batches.

    shuffle + bucket: rows are shuffled, cut into chunks of `bucket_batches` batches, sorted by length
    within each chunk (stable) and cut into batches, then the order of all batches is shuffled: little
    padding, yet every epoch mixes differently. bucket without shuffle: sorted by length overall
    (evaluation). shuffle without bucket: a plain random permutation.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    lengths = np.asarray(lengths)
    n = len(lengths)
    rng = np.random.default_rng([int(seed), int(epoch)])
    order = rng.permutation(n) if shuffle else np.arange(n)
    if bucket:
        chunk = batch_size * bucket_batches if shuffle else max(n, 1)
        order = np.concatenate([c[np.argsort(lengths[c], kind="stable")]
                                for c in np.split(order, range(chunk, n, chunk))]) if n else order
    if bucket and shuffle:
        batches = []
        for start in range(0, n, chunk):  # batches never straddle chunks
            part = order[start:start + chunk]
            batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    else:
        batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if drop_last:
        batches = [b for b in batches if len(b) == batch_size]
    if bucket and shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def iterate_batches(dataset: datasets.Dataset, batch_size: int, shuffle: bool = True, seed: int = 0,
                    epoch: int = 0, bucket: bool = True, drop_last: bool = False) -> Iterator[dict]:
    """Batches (see `collate`) of one epoch over `dataset`, in the order of `batch_indices`.

    Each batch also has "index" [B]: the rows' positions in `dataset`.
    """
    packed = _packed(dataset)
    for rows in batch_indices(packed.length, batch_size, shuffle, seed, epoch, bucket, drop_last):
        batch = collate([packed.row(int(i)) for i in rows])
        batch["index"] = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        yield batch


def padding_fraction(dataset: datasets.Dataset, batch_size: int, shuffle: bool = True, seed: int = 0,
                     epoch: int = 0, bucket: bool = True) -> float:
    """Share of the [B, T] positions of one epoch's batches that are padding (0 = none)."""
    lengths = _packed(dataset).length
    batches = batch_indices(lengths, batch_size, shuffle, seed, epoch, bucket)
    total = sum(len(b) * int(lengths[b].max()) for b in batches)
    return 1.0 - float(lengths.sum()) / total if total else 0.0


# ------------------------------------------------------------------------------------------ stats


def _split_stats(ds: datasets.Dataset, tasks: Sequence[int], unk_id: int) -> dict[int, dict]:
    """stories, questions, longest (tokens), answer_words, unknown tokens and answers, per task."""
    packed = _packed(ds)
    slots = packed.counts("answer_question")
    questions = packed.last("answer_question") + 1  # every question has at least one '-'
    unknown_tokens = packed.sums("ids", packed.lists["ids"][0] == unk_id)
    unknown_answers = packed.sums("answer_ids", packed.lists["answer_ids"][0] == unk_id)
    out = {}
    for t in tasks:
        rows = packed.task == t
        out[t] = {
            "stories": int(rows.sum()),
            "questions": int(questions[rows].sum()),
            "longest": int(packed.length[rows].max()) if rows.any() else 0,
            "answer_words": int(slots[rows].sum()),
            "unknown_tokens": int(unknown_tokens[rows].sum()),
            "unknown_answers": int(unknown_answers[rows].sum()),
        }
    return out


def _unknown_words(ds: datasets.Dataset, unk_id: int) -> list[str]:
    """Distinct tokens and answer words of a (whole, unselected) encoded dataset outside the vocabulary."""
    words: set[str] = set()
    for word_column, id_column in (("tokens", "ids"), ("answer_words", "answer_ids")):
        ids = pc.list_flatten(ds.data.column(id_column).combine_chunks())
        unknown = pc.equal(ids, unk_id)
        if pc.any(unknown).as_py():
            flat = pc.list_flatten(ds.data.column(word_column).combine_chunks())
            words.update(pc.unique(pc.filter(flat, unknown)).to_pylist())
    return sorted(words)


def data_stats(data: BabiData) -> dict:
    """Counts for `babi-dnc data --stats` (JSON-ready).

    rows: one per task and split (train, valid, test) with stories, questions, longest (story length in
    tokens, '-' slots included), answer_words ('-' slots), unknown_tokens, unknown_answers;
    files: one per task file of the requested tasks with its questions (train file = train + valid) or
    present=False; totals per split; vocab_size, source (with sha256), missing, notes.
    """
    per_split = {s: _split_stats(ds, data.tasks, data.vocab.unk_id) for s, ds in data.splits().items()}
    rows = [{"task": t, "name": TASK_NAMES[t], "split": s, **per_split[s][t]}
            for t in data.tasks for s in ("train", "valid", "test")]
    files = []
    for t in data.tasks:
        for split in SPLITS:
            name = task_file(data.set_name, t, split)
            parts = ("train", "valid") if split == "train" else ("test",)
            present = name not in data.missing
            files.append({"file": name, "task": t, "split": split, "present": present,
                          "stories": sum(per_split[p][t]["stories"] for p in parts) if present else 0,
                          "questions": sum(per_split[p][t]["questions"] for p in parts) if present else 0})
    totals = {}
    for s in ("train", "valid", "test"):
        v = per_split[s].values()
        totals[s] = {"stories": sum(x["stories"] for x in v), "questions": sum(x["questions"] for x in v),
                     "longest": max((x["longest"] for x in v), default=0),
                     "answer_words": sum(x["answer_words"] for x in v)}
    return {
        "set": data.set_name,
        "tasks": list(data.tasks),
        "valid_fraction": data.valid_fraction,
        "seed": data.seed,
        "vocab_size": data.vocab.size,
        "unk_id": data.vocab.unk_id,
        "source": dict(data.source),
        "sha256": data.source.get("sha256"),
        "missing": list(data.missing),
        "notes": list(data.notes),
        "rows": rows,
        "files": files,
        "totals": totals,
    }


__all__ = [
    "TASK_NAMES", "SETS", "PAD_ID", "IGNORE_INDEX", "BabiData", "Vocabulary", "Source", "TaskSpecError",
    "MalformedLineError", "MissingDataWarning", "UnknownWordsWarning", "tokenize", "answer_words",
    "parse_task_spec", "format_task_spec", "task_file", "parse_babi_file", "encode_story", "load_babi",
    "resolve_source", "build_vocabulary", "split_train_valid", "collate", "batch_indices", "iterate_batches",
    "padding_fraction", "data_stats",
]
