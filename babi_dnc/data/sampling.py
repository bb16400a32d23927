"""Training stories drawn by task error: the tasks a model still gets wrong are drawn more often.

A run trained on all tasks at once spends most of its steps on tasks it has already solved (uniform
sampling gives each task its share of the stories). With `task_sampling="error"`, training goes in rounds
of `ROUND_BATCHES` batches; each round draws its stories task by task with probability

    p_t = (e_t + FLOOR) / sum_u (e_u + FLOOR)          e_t: task t's error at the latest validation

(uniform before the first validation), then batches them as an epoch is batched (`batch_indices`: length
buckets, shuffled). A round depends only on (seed, round, p), so a resumed run draws the same stories.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from .batching import PackedColumns, batch_indices, collate_rows

ROUND_BATCHES = 250  # batches per round: the weights follow the validation that came before the round
FLOOR = 0.05  # a solved task keeps a share (about FLOOR / (mean error + FLOOR) of its uniform one)


def task_probabilities(tasks: np.ndarray, errors: Mapping[int, float], floor: float = FLOOR) -> np.ndarray:
    """p_t over `tasks` (sorted task numbers [K]) from their latest errors; uniform where none is known."""
    if not all(int(t) in errors for t in tasks):
        return np.full(len(tasks), 1 / len(tasks))
    weights = np.array([errors[int(t)] for t in tasks], dtype=np.float64) + floor
    return weights / weights.sum()


def round_rows(task_of_row: np.ndarray, errors: Mapping[int, float], rows: int, seed: int, round_index: int,
               floor: float = FLOOR) -> np.ndarray:
    """`rows` row indices for one round: the count of each task drawn from the multinomial of
    `task_probabilities`, its rows drawn without replacement (with replacement past its size)."""
    rng = np.random.default_rng([int(seed), int(round_index), 7])
    tasks = np.unique(task_of_row)
    counts = rng.multinomial(rows, task_probabilities(tasks, errors, floor))
    drawn = []
    for task, count in zip(tasks, counts, strict=True):
        pool = np.flatnonzero(task_of_row == task)
        drawn.append(rng.choice(pool, size=int(count), replace=int(count) > len(pool)))
    return np.concatenate(drawn)


def iterate_round(packed: PackedColumns, errors: Mapping[int, float], batch_size: int, seed: int,
                  round_index: int, batches: int = ROUND_BATCHES) -> Iterator[dict]:
    """The batches (see `collate_rows`) of one round."""
    rows = round_rows(packed.task, errors, batches * batch_size, seed, round_index)
    for part in batch_indices(packed.length[rows], batch_size, shuffle=True, seed=seed, epoch=round_index):
        yield collate_rows(packed, rows[part])
