"""The task curriculum of BabiTask: the first steps on some tasks alone, then on all of them."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from app import app
from babi_dnc.babi_task import BabiTask


def _task(tiny_data, steps=6):
    return BabiTask(tiny_data, batch_size=4, seed=1, curriculum_tasks=[8], curriculum_steps=steps)


def _tasks_of(task, steps) -> list[set[int]]:
    """The tasks of each of the batches `steps` (an iterable of step numbers) of `task`."""
    drawn, real = [], task._epoch_batches

    def recorded():
        for batch in real():
            drawn.append(set(batch["task"].tolist()))
            yield batch

    task._epoch_batches = recorded
    for step in steps:
        task.next_batch(step)
    return drawn


def test_the_curriculum_steps_draw_only_its_tasks_then_all_of_them(tiny_data):
    task = _task(tiny_data, steps=6)
    drawn = _tasks_of(task, range(30))
    assert all(tasks == {8} for tasks in drawn[:6])
    assert set().union(*drawn[6:]) == {1, 8}
    assert not task.in_curriculum and task.state_dict()["in_curriculum"] is False


def test_after_the_curriculum_the_stream_is_the_uniform_one_from_epoch_0(tiny_data):
    plain = BabiTask(tiny_data, batch_size=4, seed=1)
    expected = [plain.next_batch(step)["ids"] for step in range(8)]
    task = _task(tiny_data, steps=5)
    got = [task.next_batch(step)["ids"] for step in range(13)][5:]
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))


@pytest.mark.parametrize("stop", [3, 5, 9])  # inside the curriculum, at its end, after it
def test_the_curriculum_resumes_exactly(tiny_data, stop):
    task = _task(tiny_data, steps=5)
    for step in range(stop):
        task.next_batch(step)
    state = json.loads(json.dumps(task.state_dict()))  # as a checkpoint keeps it
    expected = [task.next_batch(step)["ids"] for step in range(stop, 14)]
    again = _task(tiny_data, steps=5)
    again.load_state_dict(state)
    got = [again.next_batch(step)["ids"] for step in range(stop, 14)]
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))


def _train(tmp_path, tiny_babi_dir, *options):
    return CliRunner().invoke(app, ["train", "--preset", "tiny", "--tasks", "1,8", "--data-dir", str(tiny_babi_dir),
                                    "--device", "cpu", "--out", str(tmp_path / "run"), "--no-progress", *options])


@pytest.mark.parametrize("options, message", [
    (["--curriculum-tasks", "3", "--curriculum-steps", "5"], "--curriculum-tasks must be tasks the run trains on"),
    (["--curriculum-tasks", "x", "--curriculum-steps", "5"], "bad task list 'x'"),
    (["--curriculum-steps", "5"], "--curriculum-steps needs --curriculum-tasks"),
    (["--curriculum-tasks", "1", "--curriculum-steps", "-2"], "--curriculum-steps must be zero or more steps"),
])
def test_bad_curriculum_options_get_one_sentence(tmp_path, tiny_babi_dir, options, message):
    result = _train(tmp_path, tiny_babi_dir, *options)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_a_run_with_a_curriculum_trains_and_keeps_it_in_its_config(tmp_path, tiny_babi_dir):
    result = _train(tmp_path, tiny_babi_dir, "--curriculum-tasks", "8", "--curriculum-steps", "4", "--max-steps", "8")
    assert result.exit_code == 0, result.output
    task = json.loads((tmp_path / "run" / "config.json").read_text())["task"]
    assert task["curriculum_tasks"] == "8" and task["curriculum_steps"] == 4
