"""The paper's encoding of a story (Graves et al. 2016, Methods, "bAbI"): its words in order, and after
every question one '-' answer slot per answer word; and the same for a whole datasets.Dataset of stories,
vectorised in Arrow."""

from __future__ import annotations

import hashlib

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .parser import interleave
from .vocab import SLOT_MARKER, Vocabulary, answer_words, tokenize

# Bump when parsing or encoding changes: part of every cache key.
FORMAT_VERSION = 1


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
    if any(SLOT_MARKER in x for x in sentences) or any(SLOT_MARKER in x for x in questions):
        sentences = [x.replace(SLOT_MARKER, " ") for x in sentences]
        questions = [x.replace(SLOT_MARKER, " ") for x in questions]
    pieces: list[str] = []
    targets: list[str] = []
    which: list[int] = []
    for text, q in interleave(sentences, questions, after):
        pieces.append(text)
        if q is not None:
            words = answer_words(answers[q]) if answers[q] else [""]
            pieces.extend([SLOT_MARKER] * len(words))
            targets.extend(words)
            which.extend([q] * len(words))
    tokens = tokenize(" ".join(pieces))
    positions: list[int] = []
    p = -1
    for _ in targets:
        p = tokens.index(SLOT_MARKER, p + 1)
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


def cache_key(*parts: object) -> str:
    """A short hex key of `parts` (cache folders, dataset fingerprints)."""
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:24]


def _empty(features: datasets.Features) -> datasets.Dataset:
    return datasets.Dataset.from_dict({k: [] for k in features}, features=features)


def tokenize_dataset(raw: datasets.Dataset, key: str) -> datasets.Dataset:
    """Parsed stories (RAW_FEATURES) -> TOKEN_FEATURES; `key` names the result in the datasets cache."""
    if len(raw) == 0:
        return _empty(TOKEN_FEATURES)
    out = raw.with_format("arrow").map(_tokens_batch, batched=True, batch_size=2000, features=TOKEN_FEATURES,
                                       new_fingerprint=cache_key(key, "tokens", FORMAT_VERSION), desc="tokenizing")
    return out.with_format(None)


def add_ids(ds: datasets.Dataset, vocab: Vocabulary, key: str) -> datasets.Dataset:
    """Tokenized stories -> FEATURES: word ids of the tokens and answer words (unknown -> vocab.unk_id)."""
    if len(ds) == 0:
        return _empty(FEATURES)
    out = ds.with_format("arrow").map(
        _ids_batch, batched=True, batch_size=2000, features=FEATURES,
        fn_kwargs={"words": vocab.words, "unk_id": vocab.unk_id},
        new_fingerprint=cache_key(key, "ids", FORMAT_VERSION, vocab.fingerprint()), desc="word ids")
    return out.with_format(None)
