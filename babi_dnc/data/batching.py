"""Batches of stories: padded [B, T] tensors, length-bucketed and shuffled per (seed, epoch)."""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import datasets
import numpy as np
import pyarrow.compute as pc
import torch

from ..metrics import IGNORE_INDEX
from .vocab import PAD_ID


@dataclass
class PackedColumns:
    """A dataset's batching columns as numpy arrays, without copying the list columns row by row.

    A list column is kept as its flat `values` with `offsets`: row i's list is values[offsets[i]:offsets[i + 1]].
    """

    length: np.ndarray  # [n] per dataset row, like task and story_id
    task: np.ndarray
    story_id: np.ndarray
    lists: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (values, offsets [n + 1])

    def row(self, i: int) -> dict:
        row = {"length": int(self.length[i]), "task": int(self.task[i]), "story_id": int(self.story_id[i])}
        for name, (values, offsets) in self.lists.items():
            row[name] = values[offsets[i]:offsets[i + 1]]
        return row

    def counts(self, name: str) -> np.ndarray:
        """Length of list column `name` for every dataset row."""
        return np.diff(self.lists[name][1])

    def sums(self, name: str, flags: np.ndarray) -> np.ndarray:
        """Per dataset row, the sum of `flags` (one per value of list column `name`)."""
        c = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
        offsets = self.lists[name][1]
        return c[offsets[1:]] - c[offsets[:-1]]

    def last(self, name: str, default: int = -1) -> np.ndarray:
        """Last value of list column `name` for every dataset row (`default` for an empty list)."""
        values, offsets = self.lists[name]
        end = offsets[1:]
        has = end > offsets[:-1]
        out = np.full(len(end), default, dtype=np.int64)
        out[has] = values[end[has] - 1]
        return out


# Packed once per dataset object, kept while the dataset lives.
_PACKED: weakref.WeakKeyDictionary[datasets.Dataset, PackedColumns] = weakref.WeakKeyDictionary()
_LIST_COLUMNS = ("ids", "answer_positions", "answer_ids", "answer_question")


def packed_columns(dataset: datasets.Dataset) -> PackedColumns:
    """The columns for batching and counting, read once per dataset through Arrow."""
    if dataset in _PACKED:
        return _PACKED[dataset]
    table = dataset.select_columns(["length", "task", "story_id", *_LIST_COLUMNS]).with_format("arrow")[:]
    lists = {}
    for name in _LIST_COLUMNS:
        col = table.column(name).combine_chunks()
        lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        lists[name] = (pc.list_flatten(col).to_numpy(zero_copy_only=False), offsets)
    scalars = (np.asarray(table.column(c).to_numpy(), dtype=np.int64) for c in ("length", "task", "story_id"))
    packed = _PACKED[dataset] = PackedColumns(*scalars, lists=lists)
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
    packed = packed_columns(dataset)
    for rows in batch_indices(packed.length, batch_size, shuffle, seed, epoch, bucket, drop_last):
        yield collate_rows(packed, rows)


def collate_rows(packed: PackedColumns, rows: Sequence[int] | np.ndarray) -> dict[str, torch.Tensor]:
    """The batch (see `collate`) of the dataset rows `rows`, with "index" [B]: those positions."""
    batch = collate([packed.row(int(i)) for i in rows])
    batch["index"] = torch.from_numpy(np.asarray(rows, dtype=np.int64))
    return batch


def padding_fraction(dataset: datasets.Dataset, batch_size: int, shuffle: bool = True, seed: int = 0,
                     epoch: int = 0, bucket: bool = True) -> float:
    """Share of the [B, T] positions of one epoch's batches that are padding (0 = none)."""
    lengths = packed_columns(dataset).length
    batches = batch_indices(lengths, batch_size, shuffle, seed, epoch, bucket)
    total = sum(len(b) * int(lengths[b].max()) for b in batches)
    return 1.0 - float(lengths.sum()) / total if total else 0.0
