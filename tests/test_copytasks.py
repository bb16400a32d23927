"""Copy and repeat-copy: sequence format, loss masks, bit errors, curriculum, resume, training, CLI."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import torch
from torch import nn

from copytasks.curriculum import Curriculum, CurriculumConfig, curriculum_levels
from copytasks.tasks import CopyTaskConfig, bit_errors, make_batch, recall_loss, sample_batch, sequence_length
from copytasks.train import CopyConfig, CopyModelConfig, CopyTask, load_copy_run, step_tokens, train_copy

# ------------------------------------------------------------------------------------------ format


def test_copy_layout():
    bits = 3
    patterns = torch.tensor([[[1, 0, 1], [0, 1, 1], [0, 0, 0]], [[1, 1, 0], [0, 0, 1], [1, 0, 0]]]).float()
    b = make_batch(patterns, torch.tensor([2, 3]), torch.tensor([1, 1]), max_repeats=1, end_flag=False)
    assert b["inputs"].shape == (2, 8, bits + 2)  # 2 + 3 + 3 steps for the longer sample
    assert b["targets"].shape == (2, 8, bits)
    for row, n in ((0, 2), (1, 3)):
        x, y = b["inputs"][row], b["targets"][row]
        assert x[0].tolist() == [0, 0, 0, 1, 0]  # start delimiter on channel `bits`
        assert torch.equal(x[1 : 1 + n, :bits], patterns[row, :n])
        assert x[1 : 1 + n, bits:].abs().sum() == 0
        assert x[1 + n].tolist() == [0, 0, 0, 0, 1]  # end delimiter on channel `bits + 1`
        assert x[2 + n :].abs().sum() == 0  # no input during recall
        assert torch.equal(y[2 + n : 2 + 2 * n], patterns[row, :n])
        assert y[: 2 + n].abs().sum() == 0
        assert b["loss_mask"][row].tolist() == [False] * (2 + n) + [True] * n + [False] * (6 - 2 * n)
        assert b["mask"][row].tolist() == [True] * (2 + 2 * n) + [False] * (6 - 2 * n)
    assert sequence_length(3, 1, False) == 8


def test_repeat_copy_layout_count_channel_and_end_flag():
    config = CopyTaskConfig("repeat-copy", bits=4, max_length=3, max_repeats=4)
    assert (config.input_size, config.output_size) == (6, 5)
    pattern = torch.tensor([[[1, 0, 0, 1], [0, 1, 1, 0]]]).float()
    b = make_batch(pattern, torch.tensor([2]), torch.tensor([3]), max_repeats=4, end_flag=True)
    x, y, loss_mask = b["inputs"][0], b["targets"][0], b["loss_mask"][0]
    assert x.shape == (2 + 2 + 3 * 2 + 1, 6)
    assert x[3, 5] == pytest.approx(0.75)  # repeat count 3 normalised by max_repeats 4
    assert x[3, :5].abs().sum() == 0
    assert torch.equal(y[4:10, :4], pattern[0].repeat(3, 1))
    assert y[:10, 4].abs().sum() == 0 and y[10].tolist() == [0, 0, 0, 0, 1]  # end-of-output flag
    assert loss_mask.tolist() == [False] * 4 + [True] * 7


def test_sample_batch_is_deterministic_and_in_range():
    config = CopyTaskConfig("repeat-copy", bits=5, min_length=2, max_length=6, max_repeats=3)
    a = sample_batch(config, 200, 5, 2, torch.Generator().manual_seed(7))
    b = sample_batch(config, 200, 5, 2, torch.Generator().manual_seed(7))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert set(a["lengths"].tolist()) == {2, 3, 4, 5}  # uniform up to the level, shorter ones included
    assert set(a["repeats"].tolist()) == {1, 2}
    assert a["inputs"].shape[-1] == 7 and a["targets"].shape[-1] == 6
    expected = (a["lengths"] * a["repeats"] + 1).tolist()  # recall steps + the end-of-output step
    assert a["loss_mask"].sum(1).tolist() == expected


def test_bad_configuration_is_a_user_error():
    from babi_dnc.errors import UserError

    with pytest.raises(UserError):
        CopyTaskConfig("reverse")
    with pytest.raises(UserError):
        CopyTaskConfig("copy", min_length=5, max_length=3)
    assert CopyTaskConfig("copy", max_repeats=4).max_repeats == 1


# ------------------------------------------------------------------------------- loss and bit errors


def test_bit_errors_count_recall_steps_only():
    targets = torch.zeros(2, 4, 3)
    targets[0, 2] = torch.tensor([1.0, 0.0, 1.0])
    loss_mask = torch.tensor([[False, False, True, True], [False, True, True, False]])
    logits = torch.where(targets > 0, 5.0, -5.0)  # perfect
    assert bit_errors(logits, targets, loss_mask).tolist() == [0.0, 0.0]
    logits[0, 2, 0] = -1.0  # a 1 read as 0
    logits[0, 3, 1] = 0.5  # a 0 read as 1
    logits[0, 0] = 9.0  # wrong, but not a recall step
    logits[1, 1, :] = 3.0  # three wrong bits
    logits[1, 3, :] = 3.0  # padding: ignored
    assert bit_errors(logits, targets, loss_mask).tolist() == [2.0, 3.0]


def test_recall_loss_ignores_other_steps():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 4, generator=g)
    targets = torch.randint(0, 2, (2, 5, 4), generator=g).float()
    loss_mask = torch.zeros(2, 5, dtype=torch.bool)
    loss_mask[:, 3:] = True
    base = recall_loss(logits, targets, loss_mask)
    changed = logits.clone()
    changed[:, :3] = 100.0
    assert recall_loss(changed, targets, loss_mask) == pytest.approx(base.item())
    expected = nn.functional.binary_cross_entropy_with_logits(logits[:, 3:], targets[:, 3:])
    assert base.item() == pytest.approx(expected.item())


# ------------------------------------------------------------------------------------------ curriculum


def test_curriculum_levels():
    assert curriculum_levels(1, 10, 1) == [(n, 1) for n in range(1, 11)]
    assert curriculum_levels(1, 10, 1, length_step=2) == [(1, 1), (3, 1), (5, 1), (7, 1), (9, 1), (10, 1)]
    assert curriculum_levels(1, 2, 3) == [(1, 1), (2, 1), (2, 2), (2, 3)]
    assert curriculum_levels(1, 4, 2) == [(1, 1), (2, 1), (2, 2), (3, 2), (4, 2)]


def test_curriculum_advances_only_on_a_low_moving_average():
    c = Curriculum(CurriculumConfig(threshold=0.5, window=3), 1, 4, 1)
    assert (c.length, c.repeats, c.index) == (1, 1, 0)
    assert not c.update(0.0) and not c.update(0.0)  # fewer than `window` measurements
    assert not c.update(2.0)  # mean 0.67 >= 0.5
    assert not c.update(0.0)  # mean of (0, 2, 0) still too high
    assert not c.update(0.0)  # (2, 0, 0) too
    assert c.update(0.0)  # (0, 0, 0): advance
    assert c.length == 2 and list(c.recent) == []  # a new level starts a fresh average
    for _ in range(2):
        assert not c.update(0.1)
    assert c.update(0.1) and c.length == 3
    c.index = len(c.levels) - 1
    assert c.done and not c.update(0.0)


def test_curriculum_describe():
    assert Curriculum(CurriculumConfig(), 1, 10, 1).describe() == "1/10 (len 1)"
    assert Curriculum(CurriculumConfig(enabled=False), 1, 3, 3).describe() == "5/5 (len 3, rep 3)"


def test_curriculum_off_starts_at_the_full_task():
    c = Curriculum(CurriculumConfig(enabled=False), 1, 5, 3)
    assert c.done and (c.length, c.repeats) == (5, 3)


def test_curriculum_state_round_trip():
    config = CurriculumConfig(threshold=1.0, window=2)
    a = Curriculum(config, 1, 8, 2)
    for error in (0.0, 0.0, 0.5):
        a.update(error)
    b = Curriculum(config, 1, 8, 2)
    b.load_state_dict(a.state_dict())
    assert (b.index, list(b.recent)) == (a.index, list(a.recent)) == (1, [0.5])
    assert b.update(0.0) == a.update(0.0) is True


# ---------------------------------------------------------------------------------------- the task


def test_task_state_round_trip_gives_the_same_batches():
    config = CopyTaskConfig("repeat-copy", bits=4, max_length=5, max_repeats=3)
    a = CopyTask(config, CurriculumConfig(threshold=1.0, window=1), batch_size=8, seed=3, eval_size=8)
    a.next_batch(0)
    a.on_evaluate({"error": 0.0, "level_error": 0.0})  # advance one level, one solved evaluation
    state = a.state_dict()
    expected = [a.next_batch(step) for step in (1, 2)]
    b = CopyTask(config, CurriculumConfig(threshold=1.0, window=1), batch_size=8, seed=3, eval_size=8)
    b.load_state_dict(torch.load(_roundtrip(state), weights_only=True))
    assert b.curriculum.index == 1 and b.solved_evals == 1
    for batch, want in zip((b.next_batch(1), b.next_batch(2)), expected, strict=True):
        assert all(torch.equal(batch[k], want[k]) for k in want)


def _roundtrip(obj):
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


class ConstantModel(nn.Module):
    """Outputs the same logit everywhere (a stand-in for the DNC's call shape)."""

    def __init__(self, output_size: int, value: float):
        super().__init__()
        self.output_size, self.value = output_size, value
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, state=None, mask=None):
        return torch.full((*x.shape[:2], self.output_size), self.value), None


def test_evaluate_counts_bit_errors_per_sequence_at_the_full_setting():
    config = CopyTaskConfig("copy", bits=4, max_length=6)
    task = CopyTask(config, batch_size=4, seed=0, eval_size=16)
    assert (task.target_set["lengths"] == 6).all()
    metrics = task.evaluate(ConstantModel(4, -3.0))  # always 0: every 1 bit of the recall is wrong
    ones = (task.target_set["targets"] * task.target_set["loss_mask"].unsqueeze(-1)).sum() / 16
    assert metrics["error"] == pytest.approx(ones.item())
    assert metrics["bit_error_rate"] == pytest.approx(ones.item() / (6 * 4))
    assert metrics["perfect"] == 0.0 and metrics["level"] == 1.0
    assert task.evaluate(ConstantModel(4, -3.0)) == metrics  # fixed evaluation set


def test_should_stop_after_solved_evaluations_in_a_row():
    task = CopyTask(CopyTaskConfig("copy", max_length=3), batch_size=2, eval_size=2, stop_when_solved=2)
    for error, stop in ((0.0, False), (0.5, False), (0.0, False), (0.0, True)):
        task.on_evaluate({"error": error, "level_error": error})
        assert task.should_stop({}) is stop
    assert not CopyTask(CopyTaskConfig(), eval_size=2, stop_when_solved=0).should_stop({})


def test_step_tokens():
    assert step_tokens(2, 1, CopyTaskConfig("copy")) == ["start", "x1", "x2", "end", "y1", "y2"]
    tokens = step_tokens(2, 2, CopyTaskConfig("repeat-copy", max_repeats=3))
    assert tokens == ["start", "x1", "x2", "rep2", "y1", "y2", "y1", "y2", "stop"]
    assert len(tokens) == sequence_length(2, 2, True)


# ---------------------------------------------------------------------------- learning (through fit)


def small_copy_config(out, max_steps: int) -> CopyConfig:
    """Copy of 1-3 vectors of 4 bits, feed-forward controller, memory 8 x 8."""
    config = CopyConfig.for_task("copy", out=str(out), plots=True, eval_size=32)
    config.task = CopyTaskConfig("copy", bits=4, min_length=1, max_length=3)
    config.model = CopyModelConfig(controller="ff", controller_size=32, memory_slots=8, word_size=8, read_heads=1)
    config.curriculum = CurriculumConfig(enabled=False)
    config.train.max_steps = max_steps
    config.train.lr = 3e-3
    config.train.eval_every = 100
    config.train.progress = False
    return config


@pytest.mark.slow  # required: `make test` (CI) runs the slow tests too; about 30-80 s on 2 cores
def test_copy_learns_to_zero_bit_errors(tmp_path):
    """A real learning test through fit: fixed seed, patterns of 1-3 vectors, memory 8 x 8, one thread;
    zero bit errors on the evaluation set after 800 steps (it gets there at about step 400)."""
    config = small_copy_config(tmp_path / "run", max_steps=800)
    summary = train_copy(config)
    assert summary["nonfinite"] == 0
    assert summary["metrics"]["error"] == 0.0, summary["metrics"]
    assert summary["metrics"]["perfect"] == 1.0
    evals = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [row for row in evals if row["kind"] == "eval"]
    assert evals[0]["error"] > 1.0  # it did learn: far from zero at the first evaluation
    model, saved = load_copy_run(tmp_path / "run", "best")
    task = CopyTask(config.task, config.curriculum, seed=5, eval_size=32)
    assert task.evaluate(model)["error"] < 0.5  # also on another set of test sequences
    assert saved["kind"] == "copy"


def test_the_progress_shows_bit_errors_per_sequence_not_a_percentage(tmp_path, capsys):
    """The validation error of the copy tasks is bit errors per sequence (any number >= 0): the progress
    lines (plain, as when piped) say so, where bAbI's show a percentage."""
    config = small_copy_config(tmp_path / "run", max_steps=4)
    config.plots = False
    config.train = dataclasses.replace(config.train, eval_every=2, log_every=2, progress=True)
    train_copy(config)
    lines = [line for line in capsys.readouterr().err.splitlines() if " val " in line]
    assert any(re.search(r" val \d+\.\d{3} bit errors/seq \(best \d+\.\d{3} bit errors/seq\)", line) for line in lines)
    assert not any(re.search(r" val [\d.]+%", line) for line in lines), lines


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_copy_writes_the_run(tmp_path):
    from typer.testing import CliRunner

    from app import app

    out = tmp_path / "tmp"
    args = ["copy", "--max-steps", "3", "--out", str(out), "--max-length", "3", "--memory-slots", "6",
            "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("config.json", "metrics.jsonl", "memory.png", "sequence.png",
                 "checkpoints/latest/model.safetensors", "checkpoints/best/model.safetensors"):
        assert (out / name).is_file(), name
    assert any((out / "tb").iterdir())
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "copy" and config["model"]["memory_slots"] == 6
    assert "bit errors/seq" in result.output and "memory.png" in result.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "holds a run" in again.output
