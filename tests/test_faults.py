"""Fault injection: kill -9 at random points, a full disk during a save, two writers of one run folder,
corrupt and hostile files, and random lines through the bAbI parser. Each checks what the user sees
(one sentence, no traceback, the documented exit status) and that nothing already written is lost."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import babi_dnc.checkpoint as ck
from app import app
from babi_dnc.checkpoint import load_checkpoint, save_checkpoint
from babi_dnc.data import parse_babi_file, story_lines
from babi_dnc.data.parser import MalformedLineError
from babi_dnc.errors import CheckpointError
from babi_dnc.models import build_model, preset
from babi_dnc.run_folder import LOCK, RunLock
from babi_dnc.train import fit
from babi_dnc.train.log import MetricsLog

from .conftest import ToyTask, quiet_config
from .test_training import assert_bit_identical, metrics_rows

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def run_toy(run_dir: Path, max_steps: int = 6, resume: bool = False, task: ToyTask | None = None, **changes):
    torch.manual_seed(0)
    config = quiet_config(optimizer="rmsprop", lr=1e-2, max_steps=max_steps, eval_every=2, **changes)
    return fit(build_model(preset("tiny"), 6), task or ToyTask(seed=5), config, run_dir, {"kind": "toy"},
               resume=resume)


def python(code: str, *args: str, **popen) -> subprocess.Popen:
    """`code` in a fresh interpreter at the repository root (tests/ importable)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=env, **popen)


def one_sentence(output: str) -> str:
    """The output of a command that failed as a user error: one 'error:' line and no traceback."""
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output
    return errors[0]


# ------------------------------------------------------------------------------------------ kill -9

KILLED_TRAINING = r"""
import os, signal, sys
from pathlib import Path
from tests.test_faults import run_toy
from tests.conftest import ToyTask

run_dir, phase, at, resume = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4] == "resume"
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
hook = None
if phase == "step":  # before step index `at`
    hook = lambda step: die() if step == at else None
else:  # in the `at`-th save of latest, between its two renames (latest moved away, the new one not in yet)
    real, moved = os.rename, [0]
    def rename(src, dst):
        real(src, dst)
        if Path(dst).name == ".old-latest":
            moved[0] += 1
            if moved[0] == at:
                die()
    os.rename = rename
run_toy(run_dir, resume=resume, task=ToyTask(seed=5, on_step=hook))
"""


def test_kill_9_at_random_points_then_resume_equals_an_unbroken_run(tmp_path):
    rng = random.Random(14)
    kills = [("swap", rng.choice([1, 2]), "fresh"), ("step", rng.choice([3, 4, 5]), "resume")]
    run = tmp_path / "killed"
    for phase, at, how in kills:
        child = python(KILLED_TRAINING, str(run), phase, str(at), how)
        assert child.wait(timeout=600) == -signal.SIGKILL
    assert (run / LOCK).exists()  # the dead training's lock: taken over below
    summary = run_toy(run, resume=True)
    assert summary["step"] == 6 and not (run / LOCK).exists()
    run_toy(tmp_path / "unbroken")
    assert_bit_identical(tmp_path / "unbroken", run)
    steps = [r["step"] for r in metrics_rows(run, "train")]
    assert steps == [1, 2, 3, 4, 5, 6]  # every step logged once, whatever the kills cut


# ---------------------------------------------------------------------------------------- full disk


def no_space(*args, **kwargs):
    raise OSError(28, os.strerror(28))


WRITER_FAULTS = {
    "safetensors": ("save_file", ck.SafetensorError('Error while serializing: IoError(Os { code: 28, kind: '
                                                    'StorageFull, message: "No space left on device" })')),
    "torch.save": ("torch", RuntimeError("[enforce fail at inline_container.cc:626] . PytorchStreamWriter failed "
                                         "writing file data/0: file write failed")),
    "rename": ("os", OSError(28, os.strerror(28))),
}


@pytest.mark.parametrize("fault", sorted(WRITER_FAULTS))
def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint_and_no_temporary_files(tmp_path, monkeypatch,
                                                                                        fault):
    torch.manual_seed(0)
    old, new = build_model(preset("tiny"), 6), build_model(preset("tiny"), 6)
    save_checkpoint(tmp_path, "latest", old, {"step": 1}, {"step": 1})
    where, error = WRITER_FAULTS[fault]

    def fail(*args, **kwargs):
        raise error

    if where == "save_file":
        monkeypatch.setattr(ck, "save_file", fail)
    elif where == "torch":
        monkeypatch.setattr(ck.torch, "save", fail)
    else:  # the swap: <tag> was moved away, the new folder cannot be moved in
        real = os.rename
        monkeypatch.setattr(ck.os, "rename", lambda s, d: fail() if Path(s).name.startswith(".tmp-") else real(s, d))
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(tmp_path, "latest", new, {"step": 2}, {"step": 2})
    monkeypatch.undo()
    message = str(info.value)
    assert "cannot save checkpoint 'latest'" in message and "--resume" in message
    assert ("disk full" if fault == "torch.save" else "No space left on device") in message
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest"]  # no .tmp-*, no .old-*
    kept = load_checkpoint(tmp_path, "latest")
    assert kept.step == 1 and all(torch.equal(kept.weights[k], v) for k, v in old.state_dict().items())


def test_a_full_disk_stops_training_with_one_sentence_and_exit_2(tmp_path, tiny_babi_dir, monkeypatch):
    real, calls = ck.save_file, [0]

    def full_on_the_third(*args, **kwargs):  # step 0, best at step 2, then latest at step 2 fails
        calls[0] += 1
        if calls[0] == 3:
            raise ck.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return real(*args, **kwargs)

    monkeypatch.setattr(ck, "save_file", full_on_the_third)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--preset", "tiny", "--max-steps", "4", "--eval-every", "2", "--tasks", "1",
                                 "--data-dir", str(tiny_babi_dir), "--out", str(out), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "No space left on device" in one_sentence(result.output)
    assert load_checkpoint(out, "latest").step == 0 and load_checkpoint(out, "best").step == 2
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    assert not (out / LOCK).exists()


# ------------------------------------------------------------------------------------ two writers

HOLDER = r"""
import sys, time
from pathlib import Path
from babi_dnc.run_folder import RunLock
RunLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
time.sleep(600)
"""


def test_one_writer_at_a_time_and_a_dead_writers_lock_is_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    holder = python(HOLDER, str(run), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CheckpointError, match=f"in use by another training \\(pid {holder.pid} on "):
            run_toy(run, max_steps=2)
        assert sorted(p.name for p in run.iterdir()) == [LOCK]  # nothing written by the refused one
    finally:
        holder.kill()  # kill -9: the system releases its flock
        holder.wait(timeout=60)
    summary = run_toy(run, max_steps=2)
    assert summary["step"] == 2 and not (run / LOCK).exists()
    assert f"from pid {holder.pid}" in capsys.readouterr().err  # the takeover is said, also without progress


def test_a_second_training_into_a_running_ones_folder_is_refused(tmp_path):
    """As with three `train` into one --out at once: the ones that come second get one sentence."""
    run = tmp_path / "run"
    lock = RunLock(run)
    lock.acquire()
    try:
        with pytest.raises(CheckpointError, match="wait for it to end or choose another --out"):
            run_toy(run, max_steps=2)
    finally:
        lock.release()
    assert sorted(p.name for p in run.iterdir()) == []


# -------------------------------------------------------------------------------- resuming a run


def test_resume_without_latest_continues_from_best_and_keeps_the_broken_one(tmp_path, capsys):
    run = tmp_path / "run"
    run_toy(run, max_steps=4)
    best_step = load_checkpoint(run, "best").step
    (run / "checkpoints" / "latest" / "meta.json").unlink()
    summary = run_toy(run, max_steps=6, resume=True)
    assert summary["step"] == 6
    err = capsys.readouterr().err
    assert f"resuming from 'best' at step {best_step}" in err and "meta.json is missing" in err
    (broken,) = [p for p in (run / "checkpoints").iterdir() if p.name.startswith("broken-latest-")]
    assert (broken / "model.safetensors").is_file()  # kept, not overwritten
    assert [r["step"] for r in metrics_rows(run, "start")] == [0]  # one run, continued


def test_resume_without_checkpoints_refuses_and_writes_nothing(tmp_path, tiny_babi_dir):
    out = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--max-steps", "2", "--tasks", "1", "--data-dir", str(tiny_babi_dir),
            "--out", str(out), "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    shutil.rmtree(out / "checkpoints")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 2
    assert "no checkpoint loads" in one_sentence(result.output) and "--restart" in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    restarted = runner.invoke(app, [*args, "--restart"])
    assert restarted.exit_code == 0, restarted.output
    assert [r["step"] for r in metrics_rows(out, "start")] == [0] and load_checkpoint(out, "latest").step == 2


# ------------------------------------------------------------------------------ hostile files


@pytest.mark.parametrize("config", ["[]", '{"kind": "babi", "model": 3}', '{"kind": "babi", "model": {"model": '
                                    '"dnc", "memory_slots": "many"}, "data": {}, "train": {}}',
                                    '{"kind": "babi", "model": {"model": "dnc", "reader_scope": "whole"}, "data": {}, '
                                    '"train": {}}'])
@pytest.mark.parametrize("command", ["train", "eval", "chat"])
def test_a_config_of_the_wrong_shape_gets_one_sentence(tiny_run, tiny_babi_dir, tmp_path, config, command):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "config.json").write_text(config)
    args = {"train": ["train", "--out", str(run), "--resume", "--data-dir", str(tiny_babi_dir), "--no-progress"],
            "eval": ["eval", str(run), "--device", "cpu", "--data-dir", str(tiny_babi_dir)],
            "chat": ["chat", str(run), "--story", str(REPO / "stories" / "01-single-supporting-fact.txt")]}[command]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output and f"{run / 'config.json'}" in result.output


def test_a_hostile_pickle_in_a_checkpoint_is_refused_without_running_it(tmp_path):
    class Payload:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    save_checkpoint(tmp_path, "latest", build_model(preset("tiny"), 6), {"step": 1}, {"step": 1})
    folder = tmp_path / "checkpoints" / "latest"
    torch.save({"step": Payload()}, folder / "trainer.pt")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(tmp_path, "latest", verify=False)
    (folder / "meta.json").write_text("[]")
    with pytest.raises(CheckpointError, match="not a checkpoint's metadata"):
        load_checkpoint(tmp_path, "latest")
    assert not (tmp_path / "pwned").exists()


# ------------------------------------------------------------------------------- the bAbI parser

LINE_TEXT = st.lists(st.sampled_from([*"12 9?.,\tab\ufeff²\r", "Mary", "went", "Where is"]), max_size=12).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE_TEXT, max_size=12))
def test_random_lines_parse_or_name_their_file_and_line(lines):
    try:
        stories = parse_babi_file(lines, name="f.txt")
    except MalformedLineError as e:
        assert e.file == "f.txt" and 1 <= e.line_number <= len(lines)
        assert str(e).startswith(f"f.txt:{e.line_number}: ") and str(e).endswith("re-download this file.")
        return
    for story in stories:
        assert len(story["questions"]) == len(story["answers"]) == len(story["supporting"])
        assert all(q.rstrip().endswith("?") for q in story["questions"])
        assert not any("?" in s for s in story["sentences"])  # a line with a '?' is never taken for a statement
        assert all(0 <= i < len(story["sentences"]) for s in story["supporting"] for i in s)


WORD = st.sampled_from(["mary", "john", "went", "to", "the", "kitchen", "garden", "milk", "apple"])
SENTENCE = st.lists(WORD, min_size=1, max_size=6).map(lambda w: " ".join(w).capitalize() + ".")
QUESTION = st.lists(WORD, min_size=1, max_size=5).map(lambda w: "Where is " + " ".join(w) + "?")
ANSWER = st.lists(WORD, min_size=1, max_size=2).map(",".join)


@st.composite
def babi_story(draw) -> list[tuple[str, str | None, list[int]]]:
    """Lines (text, answer or None, supporting line ids) of one story: statements, then questions."""
    lines: list[tuple[str, str | None, list[int]]] = []
    statements: list[int] = []
    for _ in range(draw(st.integers(1, 6))):
        if statements and draw(st.booleans()):
            support = draw(st.lists(st.sampled_from(statements), max_size=3))
            lines.append((draw(QUESTION), draw(ANSWER), support))
        else:
            lines.append((draw(SENTENCE), None, []))
            statements.append(len(lines))
    return lines


@settings(max_examples=100, deadline=None)
@given(st.lists(babi_story(), min_size=1, max_size=4), st.booleans(), st.booleans())
def test_valid_stories_round_trip_through_the_parser(stories, bom, crlf):
    text = "\n".join(f"{i} {t}" + (f"\t{a}\t{' '.join(map(str, s))}" if a is not None else "")
                     for story in stories for i, (t, a, s) in enumerate(story, start=1))
    data = ("\ufeff" if bom else "") + (text.replace("\n", "\r\n") if crlf else text) + "\n"
    parsed = parse_babi_file(data.encode(), name="f.txt")
    assert len(parsed) == len(stories)
    for story, lines in zip(parsed, stories, strict=True):
        assert story_lines(story) == [(t, a) for t, a, _ in lines]
        ids = [i for i, (_, a, _) in enumerate(lines, start=1) if a is None]
        assert story["supporting"] == [[ids.index(i) for i in s] for _, a, s in lines if a is not None]
    assert json.dumps(parsed)  # plain data, as the cache stores it


# ------------------------------------------------------------------------------- the non-finite guard


def test_the_nonfinite_guard_gives_up_and_never_saves_bad_weights(tmp_path):
    from babi_dnc.errors import TrainingDiverged

    torch.manual_seed(0)
    model = build_model(preset("tiny"), 6)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    config = quiet_config(optimizer="adam", lr=1e30, max_steps=200, eval_every=5, log_every=2, nonfinite_patience=3,
                          nonfinite_reloads=2)
    with pytest.raises(TrainingDiverged, match="lower --lr") as info:
        fit(model, ToyTask(seed=5), config, tmp_path / "run", {"kind": "toy"})
    assert info.value.exit_code == 3
    run = tmp_path / "run"
    assert len(metrics_rows(run, "reload")) == 2 and len(metrics_rows(run, "diverged")) == 1
    assert metrics_rows(run, "refused_save")  # the wrecked weights were offered and refused
    for tag in ("latest", "best"):
        if (run / "checkpoints" / tag).exists():
            weights = load_checkpoint(run, tag).weights
            norm = sum(float(v.double().square().sum()) for v in weights.values()) ** 0.5
            assert norm < 1e3, (tag, norm)
    assert all(torch.equal(load_checkpoint(run, "latest").weights[k], v) for k, v in initial.items())
    skipped = [r for r in metrics_rows(run, "train") if r["skipped"] == 2]
    assert skipped and all("loss" not in r for r in skipped)  # no "loss 0.0" for windows without an update
    assert not (run / LOCK).exists()


def test_lr_1e30_exits_3_with_the_warnings_shown_without_progress(tmp_path, tiny_babi_dir):
    result = runner.invoke(app, ["train", "--preset", "tiny", "--tasks", "1", "--data-dir", str(tiny_babi_dir),
                                 "--lr", "1e30", "--max-steps", "150", "--eval-every", "10", "--out",
                                 str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 3, result.output
    assert "training diverged" in one_sentence(result.output)
    assert "non-finite loss or gradient, update skipped" in result.output and "reloaded the checkpoint" in result.output


# ------------------------------------------------------------------------- bad options and folders

TRAIN = ["train", "--preset", "tiny", "--tasks", "1", "--max-steps", "2", "--no-progress"]


@pytest.mark.parametrize("option, value, words", [
    ("--clip-norm", "-1", "--clip-norm must be a positive number"),
    ("--lr", "-1", "--lr must be a positive number"),
    ("--lr", "nan", "--lr must be a positive number, not nan"),
    ("--max-minutes", "-1", "--max-minutes must be a positive number of minutes"),
    ("--threads", "100000", "--threads must be from 1 to 1024, not 100000"),
    ("--reader-scope", "whole", "--reader-scope must be question or story, not 'whole'"),
    ("--reader-scope", "story", "--reader-scope story is the backward reader's: give --backward-reader N"),
    ("--model", "gru", "--model must be dnc or lstm, not 'gru'"),
])
def test_bad_training_options_get_one_sentence_and_write_nothing(tmp_path, tiny_babi_dir, option, value, words):
    out = tmp_path / "run"
    result = runner.invoke(app, [*TRAIN, "--data-dir", str(tiny_babi_dir), "--out", str(out), option, value])
    assert result.exit_code == 2 and words in one_sentence(result.output)
    assert not out.exists()


def test_model_options_are_checked_against_the_resumed_runs_settings(tmp_path, tiny_babi_dir):
    out, data = tmp_path / "run", ["--data-dir", str(tiny_babi_dir), "--out", str(tmp_path / "run")]
    first = runner.invoke(app, [*TRAIN, *data, "--backward-reader", "4", "--reader-scope", "story"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["train", *data, "--resume", "--reader-scope", "story", "--max-steps", "3",
                                "--no-progress"])
    assert again.exit_code == 0, again.output  # the run's own reader serves the scope given
    assert load_checkpoint(out, "latest").step == 3
    fresh = tmp_path / "fresh"
    refused = runner.invoke(app, [*TRAIN, "--data-dir", str(tiny_babi_dir), "--out", str(fresh), "--sharpness",
                                  "--no-links"])
    assert refused.exit_code == 2 and "leave it out with --no-links" in one_sentence(refused.output)
    assert not fresh.exists()


def test_run_folders_that_are_not_runs_are_never_written(tmp_path, tiny_babi_dir):
    data = ["--data-dir", str(tiny_babi_dir)]
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    for extra in ([], ["--resume"], ["--restart"]):
        result = runner.invoke(app, [*TRAIN, *data, "--out", str(file), *extra])
        assert result.exit_code == 2 and "is a file, not a run folder" in one_sentence(result.output)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("mine")
    for extra in ([], ["--resume"], ["--restart"]):
        result = runner.invoke(app, [*TRAIN, *data, "--out", str(theirs), *extra])
        assert result.exit_code == 2 and "not a babi-dnc run (thesis.tex)" in one_sentence(result.output)
    assert file.read_text() == "mine" and sorted(p.name for p in theirs.iterdir()) == ["thesis.tex"]
    if Path("/proc/self").is_dir():
        result = runner.invoke(app, [*TRAIN, *data, "--out", "/proc/babi-dnc/run"])
        assert result.exit_code == 2 and "cannot write into /proc/babi-dnc/run" in one_sentence(result.output)


def test_eval_report_into_a_file_is_refused_before_evaluating(tiny_run, tmp_path):
    report = tmp_path / "report.html"
    report.write_text("")
    result = runner.invoke(app, ["eval", str(tiny_run), "--report", str(report), "--device", "cpu"])
    assert result.exit_code == 2 and "choose another --report" in one_sentence(result.output)
    assert "test error" not in result.output  # no table: nothing was evaluated


def test_error_messages_are_printed_as_they_are(tiny_run, tmp_path):
    story = tmp_path / "a [/] [bold]b :100: c.txt"  # '[/]' is a folder "a [" and "]" inside it
    story.parent.mkdir()
    story.write_text("1 Mary went to the kitchen.\n2 Where is Mary?\n")
    result = runner.invoke(app, ["chat", str(tiny_run), "--story", str(story)])
    assert result.exit_code == 2
    assert f"{story}:2: a question without a tab and its answer" in one_sentence(result.output)


# ---------------------------------------------------------------------------------- exit statuses


def signal_at_step_1(monkeypatch, signum: int) -> None:
    """A bAbI training sends itself `signum` as it takes the batch of step 1."""
    from babi_dnc.babi_task import BabiTask

    real = BabiTask.next_batch

    def next_batch(self, step):
        if step == 1:
            os.kill(os.getpid(), signum)
        return real(self, step)

    monkeypatch.setattr(BabiTask, "next_batch", next_batch)


def test_sigterm_exits_75_and_a_time_limit_exits_0(tmp_path, tiny_babi_dir, monkeypatch):
    args = [*TRAIN[:-3], "--max-steps", "6", "--no-progress", "--data-dir", str(tiny_babi_dir)]
    signal_at_step_1(monkeypatch, signal.SIGTERM)
    stopped = runner.invoke(app, [*args, "--out", str(tmp_path / "a")], env={"COLUMNS": "250"})
    monkeypatch.undo()
    assert stopped.exit_code == 75, stopped.output
    assert "stopped by SIGTERM at step 2, saved: continue with --resume" in stopped.output
    (row,) = [line for line in stopped.output.splitlines() if str(tmp_path / "a") in line and "│" in line]
    cells = [c.strip() for c in row.split("│")[1:-1]]  # run, steps, best val error, at step, last val error
    assert cells[1:5] == ["2", "n/a", "n/a", "n/a"], row  # no evaluation yet: not "at step -1"
    assert load_checkpoint(tmp_path / "a", "latest").step == 2

    timed = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--max-minutes", "1e-9"])
    assert timed.exit_code == 0, timed.output
    assert "time limit of 1e-09 minutes reached at step 1" in timed.output


def test_system_errors_and_ctrl_c_outside_training_get_one_sentence(tiny_run, monkeypatch):
    import eval.harness as harness

    def full(*args, **kwargs):
        raise OSError(28, os.strerror(28), "/data/report/results.csv")

    monkeypatch.setattr(harness, "evaluate_runs", full)
    result = runner.invoke(app, ["eval", str(tiny_run), "--device", "cpu"])
    assert result.exit_code == 2
    assert "cannot read or write /data/report/results.csv (No space left on device)" in one_sentence(result.output)

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(harness, "evaluate_runs", ctrl_c)
    result = runner.invoke(app, ["eval", str(tiny_run), "--device", "cpu"])
    assert result.exit_code == 130 and "interrupted" in one_sentence(result.output)


# ---------------------------------------------------------------------- links and damaged run files


def resume_args(run: Path, data_dir: Path, *extra: str) -> list[str]:
    return ["train", "--out", str(run), "--resume", "--data-dir", str(data_dir), "--no-progress", *extra]


@pytest.mark.parametrize("name", [LOCK, "metrics.jsonl"])
def test_a_link_in_place_of_the_lock_or_the_log_is_refused_and_never_written_through(tiny_run, tiny_babi_dir,
                                                                                    tmp_path, name):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    outside = tmp_path / "outside.txt"
    outside.write_text("mine\n")
    (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(outside)
    result = runner.invoke(app, resume_args(run, tiny_babi_dir, "--max-steps", "10"))
    assert result.exit_code == 2, result.output
    assert f"{run / name} is a symbolic link" in one_sentence(result.output)
    assert outside.read_text() == "mine\n" and (run / name).is_symlink()
    assert load_checkpoint(run, "latest").step == 8  # nothing trained


KILLED_LOG_REWRITE = r"""
import os, signal, sys
from pathlib import Path
from babi_dnc.train.log import MetricsLog

real = os.replace
def replace(src, dst):  # the new log is written and fsynced: die just before it is renamed in
    if Path(dst).name == "metrics.jsonl":
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)
os.replace = replace
MetricsLog(Path(sys.argv[1]), True, False, resume_step=4)
"""


def test_resume_rewrites_the_log_atomically_so_a_kill_loses_no_line(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = (run / "metrics.jsonl").read_bytes()
    assert python(KILLED_LOG_REWRITE, str(run)).wait(timeout=120) == -signal.SIGKILL
    assert (run / "metrics.jsonl").read_bytes() == before
    from babi_dnc.run_folder import start_mode

    assert start_mode(run, resume=True) == "resume"  # the killed rewrite's temporary file is the run's own
    log = MetricsLog(run, True, False, resume_step=4)
    log.close()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows and max(r["step"] for r in rows) == 4 and log.note is None


DAMAGE = bytes(range(128, 256)) * 24 + b"\n[1, 2, 3]\n42\n"  # not UTF-8, then JSON that is not an object


def test_damaged_log_lines_are_dropped_and_said_by_resume_and_skipped_by_the_report(tiny_run, tiny_babi_dir,
                                                                                     tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    valid = (run / "metrics.jsonl").read_bytes()
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(DAMAGE)
    report = runner.invoke(app, ["eval", str(run), "--device", "cpu", "--data-dir", str(tiny_babi_dir), "--report",
                                 str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    assert "Traceback" not in report.output and (tmp_path / "report" / "report.md").is_file()
    resumed = runner.invoke(app, resume_args(run, tiny_babi_dir, "--max-steps", "10"))
    assert resumed.exit_code == 0, resumed.output
    assert f"dropped 3 damaged lines of {run / 'metrics.jsonl'}" in resumed.output
    log = (run / "metrics.jsonl").read_bytes()
    assert log.startswith(valid) and all(isinstance(json.loads(line), dict) for line in log.splitlines())


def test_resume_refuses_a_vocabulary_that_does_not_match_the_run(tiny_run, tiny_babi_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    vocab = json.loads((run / "vocab.json").read_text())
    vocab["words"] = [w.replace("kitchen", "kitchem") for w in vocab["words"]]  # still sorted
    (run / "vocab.json").write_text(json.dumps(vocab))
    result = runner.invoke(app, resume_args(run, tiny_babi_dir, "--max-steps", "10"))
    assert result.exit_code == 2, result.output
    assert f"(kitchen) are not in {run / 'vocab.json'}" in one_sentence(result.output)
    assert load_checkpoint(run, "latest").step == 8


def test_threads_beyond_any_cpu_are_refused_by_copy_and_bench(tmp_path):
    out = tmp_path / "copy"
    copied = runner.invoke(app, ["copy", "--max-steps", "2", "--threads", "20000", "--out", str(out)])
    assert copied.exit_code == 2 and "--threads must be from 1 to 1024" in one_sentence(copied.output)
    assert not out.exists()
    for threads in ("0", "100000"):
        benched = runner.invoke(app, ["bench", "--threads", threads])
        assert benched.exit_code == 2 and f"--threads must be from 1 to 1024, not {threads}" in one_sentence(
            benched.output)


@pytest.mark.parametrize("command", ["data", "train", "eval"])
def test_a_symbolic_link_loop_as_data_dir_gets_one_sentence(tiny_run, tmp_path, command):
    loop = tmp_path / "a"
    loop.symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(loop)
    args = {"data": ["data"], "train": [*TRAIN, "--out", str(tmp_path / "run")],
            "eval": ["eval", str(tiny_run), "--device", "cpu"]}[command]
    result = runner.invoke(app, [*args, "--data-dir", str(loop)])
    assert result.exit_code == 2, result.output
    assert f"bAbI data path {loop} is a loop of symbolic links" in one_sentence(result.output)
    assert not (tmp_path / "run").exists()


def closed(redirect: str, *args: str) -> subprocess.CompletedProcess:
    """`babi-dnc ARGS` with stdin or stdout closed by the shell (`<&-`, `>&-`)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(["bash", "-c", f'exec "$@" {redirect}', "-", sys.executable, "-m", "app", *args], cwd=REPO,
                          env=env, stderr=subprocess.PIPE, text=True, timeout=300)


def test_a_closed_stdin_or_stdout_is_no_crash(tiny_run, tiny_babi_dir, tmp_path):
    quiet = closed(">&-", "data", "--data-dir", str(tiny_babi_dir), "--tasks", "1")
    assert quiet.returncode == 0 and "Traceback" not in quiet.stderr, quiet.stderr
    refused = closed(">&-", "data", "--data-dir", str(tmp_path / "nowhere"))
    assert refused.returncode == 2 and "does not exist" in one_sentence(refused.stderr)
    chat = closed("<&-", "chat", str(tiny_run))
    assert chat.returncode == 0 and "Traceback" not in chat.stderr, chat.stderr


BIG = "tasks_1-20_v1-2/en-10k/qa1_single-supporting-fact_train.txt"


def bomb(path: Path) -> Path:
    """A .tar.gz of a few hundred bytes whose one member says it holds 8 GiB (its data is cut short)."""
    import gzip
    import tarfile

    info = tarfile.TarInfo(BIG)
    info.size = 8 << 30
    path.write_bytes(gzip.compress(info.tobuf(format=tarfile.PAX_FORMAT) + bytes(1 << 16)))
    return path


def test_an_archive_bomb_or_a_huge_data_file_is_refused_unread(tmp_path):
    result = runner.invoke(app, ["data", "--data-dir", str(bomb(tmp_path / "bomb.tar.gz"))])
    assert result.exit_code == 2, result.output
    sentence = one_sentence(result.output)
    assert f"member {BIG} holds 8,589,934,592 bytes" in sentence and "refused unread" in sentence
    huge = tmp_path / BIG
    huge.parent.mkdir(parents=True)
    with open(huge, "wb") as f:
        f.truncate(100 << 20)  # sparse: no disk used
    result = runner.invoke(app, ["data", "--data-dir", str(tmp_path / "tasks_1-20_v1-2")])
    assert result.exit_code == 2 and f"{huge} holds 104,857,600 bytes" in one_sentence(result.output)


@pytest.mark.parametrize("meets", ["the new files", "a removed file"])
def test_a_checkpoint_replaced_while_it_is_read_is_not_reported_corrupt(tmp_path, monkeypatch, meets):
    torch.manual_seed(0)
    save_checkpoint(tmp_path, "latest", build_model(preset("tiny"), 6), {"step": 1}, {"step": 1})
    real, saves = ck.sha256_file, []

    def save_meanwhile(path):  # a training saves step 2 after the reader read meta.json of step 1
        if not saves:
            saves.append(2)
            save_checkpoint(tmp_path, "latest", build_model(preset("tiny"), 6), {"step": 2}, {"step": 2})
            if meets == "a removed file":  # the reader had resolved .old-latest, which the save removed
                raise FileNotFoundError(2, os.strerror(2), str(path))
        return real(path)

    monkeypatch.setattr(ck, "sha256_file", save_meanwhile)
    assert load_checkpoint(tmp_path, "latest").step == 2 and saves
    monkeypatch.undo()
    (tmp_path / "checkpoints" / "latest" / "model.safetensors").write_bytes(b"damaged")
    with pytest.raises(CheckpointError, match="does not match its checksum"):  # a damaged one still is
        load_checkpoint(tmp_path, "latest")


@pytest.mark.parametrize("options, words", [
    (["--seed", "7"], "was trained with --seed 0, not --seed 7: leave --seed 7 out"),
    (["--set", "en"], "was trained with --set en-10k, not --set en"),
    (["--preset", "small"], "was trained with another model than --preset small's (controller_size 16, not 256; "),
    (["--max-steps", "4"], "is at step 8 already, past --max-steps 4: pass a --max-steps of 8 or more"),
])
def test_resume_refuses_options_that_differ_from_the_runs(tiny_run, tiny_babi_dir, tmp_path, options, words):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = (run / "config.json").read_bytes()
    result = runner.invoke(app, resume_args(run, tiny_babi_dir, *options))
    assert result.exit_code == 2, result.output
    assert words in one_sentence(result.output)
    assert (run / "config.json").read_bytes() == config and load_checkpoint(run, "latest").step == 8


def test_resume_accepts_the_runs_own_preset_and_seed(tiny_run, tiny_babi_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = runner.invoke(app, resume_args(run, tiny_babi_dir, "--preset", "tiny", "--seed", "0", "--max-steps", "9"))
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run, "latest").step == 9


class PipedInput(io.StringIO):
    """Piped stdin that records the longest piece any read returned."""

    longest = 0

    def readline(self, size=-1):
        line = super().readline(size)
        self.longest = max(self.longest, len(line))
        return line

    def isatty(self):
        return False


def test_a_huge_line_in_chat_is_refused_as_it_is_read_and_never_echoed(tiny_run, tmp_path):
    from rich.console import Console

    from babi_dnc.chat import ChatSession, chat_loop

    huge = "mary " * 400_000  # 2,000,000 characters, no end of line for a while
    stdin, out = PipedInput(f"{huge}\nwhere is mary?\n"), io.StringIO()
    chat_loop(ChatSession.from_run(str(tiny_run)), Console(file=out, width=200), stdin=stdin)
    shown = out.getvalue()
    assert "that line is too long (2000000 characters, at most 1000)" in shown and "mary " * 20 not in shown
    assert "> where is mary?" in shown and "bye" in shown  # the session went on
    assert stdin.longest <= 1 << 16  # read in pieces: never the whole line at once
    story = tmp_path / "story.txt"
    story.write_text(f"Mary went to the kitchen.\n{huge}\nWhere is Mary?\n")
    result = runner.invoke(app, ["chat", str(tiny_run), "--story", str(story)])
    assert result.exit_code == 2 and "mary " * 20 not in result.output
    assert f"story file {story} has a line of 2000000 characters (line 2)" in one_sentence(result.output)


def test_sighup_in_training_saves_and_exits_75_like_sigterm(tmp_path, tiny_babi_dir, monkeypatch):
    signal_at_step_1(monkeypatch, signal.SIGHUP)
    out = tmp_path / "run"
    result = runner.invoke(app, [*TRAIN[:-3], "--max-steps", "6", "--no-progress", "--data-dir", str(tiny_babi_dir),
                                 "--out", str(out)])
    assert result.exit_code == 75, result.output
    assert "stopped by SIGHUP at step 2, saved: continue with --resume" in result.output
    assert load_checkpoint(out, "latest").step == 2 and not (out / LOCK).exists()


def test_sighup_ends_chat_with_one_sentence_and_exit_129(tiny_run):
    chat = python("import app; app.main()", "chat", str(tiny_run), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, text=True)
    try:
        assert "Tell it a story" in chat.stdout.readline() + chat.stdout.readline()  # the banner: it is waiting
        chat.send_signal(signal.SIGHUP)
        _, err = chat.communicate(timeout=120)
    finally:
        chat.kill()
    assert chat.returncode == 129, err
    assert "the terminal hung up (SIGHUP)" in one_sentence(err)


CTRL_C_AT_EXIT = r"""
import atexit, os, signal, time
import eval.harness as harness

def ctrl_c(*args, **kwargs):  # the first Ctrl-C, during the evaluation
    raise KeyboardInterrupt

def again():  # more Ctrl-C while the interpreter shuts down (as during torch's exit hooks)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)

harness.evaluate_runs = ctrl_c
atexit.register(again)
import app
app.main()
"""


def test_repeated_ctrl_c_in_eval_ends_with_one_sentence_and_no_traceback(tiny_run):
    child = python(CTRL_C_AT_EXIT, "eval", str(tiny_run), "--device", "cpu", stderr=subprocess.PIPE, text=True)
    _, err = child.communicate(timeout=120)
    lines = err.strip().splitlines()  # a piped eval first says what it starts (cli.common.ProgressLines)
    assert child.returncode == 130 and lines[-1] == "error: interrupted." and "Traceback" not in err, err


def test_a_closed_terminal_stops_a_training_that_saves_and_exits_75(tmp_path, tiny_babi_dir):
    """The terminal a training prints on goes away (its SIGHUP, then every write to it fails)."""
    import pty
    import select
    import time

    master, slave = pty.openpty()
    out = tmp_path / "run"
    child = python("import app; app.main()", *TRAIN[:-3], "--max-steps", "100000", "--eval-every", "1000",
                   "--data-dir", str(tiny_babi_dir), "--out", str(out), stdin=subprocess.DEVNULL, stdout=slave,
                   stderr=slave, start_new_session=True)
    os.close(slave)
    log, deadline = out / "metrics.jsonl", time.monotonic() + 120
    try:
        while time.monotonic() < deadline and '"kind": "train"' not in (log.read_text() if log.exists() else ""):
            if select.select([master], [], [], 0.2)[0]:
                os.read(master, 1 << 16)  # what it shows on its terminal, read so that it never waits to print
        os.close(master)  # the terminal is gone: writes to it fail with EIO
        child.send_signal(signal.SIGHUP)
        assert child.wait(timeout=120) == 75
    finally:
        child.kill()
    assert load_checkpoint(out, "latest").step > 0 and not (out / LOCK).exists()


@pytest.mark.parametrize("name", ["checkpoints", "tb"])
def test_a_linked_checkpoint_or_tensorboard_folder_is_refused(tiny_run, tiny_babi_dir, tmp_path, name):
    run, outside = tmp_path / "run", tmp_path / "outside"
    shutil.copytree(tiny_run, run)
    shutil.move(run / name, outside)  # the run's own folder, now reached through a link
    (run / name).symlink_to(outside)
    before = sorted(p.relative_to(outside) for p in outside.rglob("*"))
    result = runner.invoke(app, resume_args(run, tiny_babi_dir, "--max-steps", "10"))
    assert result.exit_code == 2, result.output
    assert f"{run / name} is a symbolic link" in one_sentence(result.output)
    assert sorted(p.relative_to(outside) for p in outside.rglob("*")) == before  # nothing written through it


SIGTERM_WHILE_LOADING = r"""
import os, signal, time
import babi_dnc.babi_train as babi_train

def load_data(*args, **kwargs):  # SIGTERM arrives while the data loads, before the first step
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)

babi_train.load_data = load_data
import app
app.main()
"""


def test_sigterm_while_a_training_loads_its_data_ends_with_one_sentence_and_exit_143(tmp_path, tiny_babi_dir):
    out = tmp_path / "run"
    child = python(SIGTERM_WHILE_LOADING, *TRAIN[:-3], "--max-steps", "6", "--no-progress", "--data-dir",
                   str(tiny_babi_dir), "--out", str(out), stderr=subprocess.PIPE, text=True)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 143, err
    assert "stopped by SIGTERM: files already written are kept" in one_sentence(err)
    assert not (out / LOCK).exists()  # the lock is released: the same command starts again
