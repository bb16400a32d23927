"""Counts for `babi-dnc data --stats`: stories, questions, story lengths and unknown words per task and split."""

from __future__ import annotations

from collections.abc import Sequence

import datasets

from .batching import packed_columns
from .loading import BabiData
from .tasks import SPLITS, TASK_NAMES, task_file


def _split_stats(ds: datasets.Dataset, tasks: Sequence[int], unk_id: int) -> dict[int, dict]:
    """stories, questions, longest (tokens), answer_words, unknown tokens and answers, per task."""
    packed = packed_columns(ds)
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
