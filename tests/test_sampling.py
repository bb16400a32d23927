"""Sampling training stories by task error (data/sampling.py) and its use by BabiTask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from app import app
from babi_dnc.babi_task import BabiTask
from babi_dnc.data.sampling import round_rows, task_probabilities


def test_task_probabilities_by_hand():
    tasks = np.array([1, 2, 5])
    p = task_probabilities(tasks, {1: 0.45, 2: 0.0, 5: 0.15}, floor=0.05)
    np.testing.assert_allclose(p, [0.5 / 0.75, 0.05 / 0.75, 0.2 / 0.75])
    np.testing.assert_allclose(task_probabilities(tasks, {1: 0.45}), [1 / 3] * 3)  # before every task is known


def test_a_round_draws_tasks_by_error_and_is_reproducible():
    task_of_row = np.repeat([1, 2], [300, 700])  # uniform sampling would give task 1 30% of the stories
    errors = {1: 0.55, 2: 0.0}  # p = 0.6 / 0.65 and 0.05 / 0.65
    rows = round_rows(task_of_row, errors, 2000, seed=3, round_index=4)
    share = (task_of_row[rows] == 1).mean()
    assert abs(share - 0.6 / 0.65) < 0.03
    assert np.array_equal(rows, round_rows(task_of_row, errors, 2000, seed=3, round_index=4))
    assert not np.array_equal(rows, round_rows(task_of_row, errors, 2000, seed=3, round_index=5))
    few = round_rows(task_of_row, {1: 0.0, 2: 0.0}, 100, seed=0, round_index=0)
    assert len(np.unique(few)) == 100  # without replacement while a task has stories enough


def _task(tiny_data, sampling="error"):
    task = BabiTask(tiny_data, batch_size=4, seed=1, sampling=sampling)
    task.round_batches = 3
    return task


def _drawn_rows(task, steps) -> np.ndarray:
    """The training rows of `steps` batches of `task`."""
    rows, real = [], task._epoch_batches

    def recorded():
        for batch in real():
            rows.append(batch["index"].numpy())
            yield batch

    task._epoch_batches = recorded
    for step in range(steps):
        task.next_batch(step)
    return np.concatenate(rows)


def test_babi_task_draws_the_next_round_by_the_latest_validation(tiny_data, monkeypatch):
    task = _task(tiny_data)
    seen = []
    real = task._epoch_batches

    def record():
        seen.append(dict(task.round_errors))
        return real()

    monkeypatch.setattr(task, "_epoch_batches", record)
    task.next_batch(0)
    task.on_evaluate({"error": 0.3, "error_task_1": 0.6, "error_task_8": 0.0})
    for step in range(1, 4):  # the rest of round 0, then round 1 starts
        task.next_batch(step)
    assert seen == [{}, {1: 0.6, 8: 0.0}] and task.epoch == 1


def test_error_sampling_resumes_exactly(tiny_data):
    task = _task(tiny_data)
    task.next_batch(0)
    task.on_evaluate({"error": 0.3, "error_task_1": 0.6, "error_task_8": 0.0})
    for step in range(1, 5):
        task.next_batch(step)
    state = task.state_dict()
    expected = [task.next_batch(step)["ids"] for step in range(5, 12)]
    again = _task(tiny_data)
    again.load_state_dict(state)
    got = [again.next_batch(step)["ids"] for step in range(5, 12)]
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))
    assert again.round_errors == {1: 0.6, 8: 0.0}


def test_error_sampling_draws_the_worse_task_more_often(tiny_data):
    tasks = np.asarray(tiny_data.train["task"])
    task = _task(tiny_data)
    task.round_batches = 200
    task.round_errors = {1: 0.95, 8: 0.0}  # p(task 1) = 1.0 / 1.05
    assert (tasks[_drawn_rows(task, 50)] == 1).mean() > 0.9
    uniform = _task(tiny_data, sampling="uniform")
    assert (tasks[_drawn_rows(uniform, 10)] == 1).mean() < 0.7


@pytest.mark.parametrize("value", ["errors", "Error"])
def test_an_unknown_task_sampling_gets_one_sentence(tmp_path, tiny_babi_dir, value):
    result = CliRunner().invoke(app, ["train", "--preset", "tiny", "--tasks", "1", "--data-dir", str(tiny_babi_dir),
                                      "--out", str(tmp_path / "run"), "--task-sampling", value, "--no-progress"])
    assert result.exit_code == 2 and "--task-sampling must be uniform or error" in result.output
    assert not (tmp_path / "run").exists()
