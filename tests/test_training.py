"""The training loop and the bAbI task: masking, evaluation counting, exact resume, the non-finite guard,
signals, the run directory and the `train` command."""

from __future__ import annotations

import json
import math
import os
import signal
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from babi_dnc.babi_task import BabiTask, answer_loss, evaluate_babi
from babi_dnc.babi_train import train_babi
from babi_dnc.checkpoint import load_checkpoint
from babi_dnc.data.config import DataConfig
from babi_dnc.metrics import question_results
from babi_dnc.models import build_model, preset
from babi_dnc.runs import load_run
from babi_dnc.train import DistEnv, TrainConfig, fit, shard_batch

from .conftest import ToyTask, quiet_config


def metrics_rows(run_dir, kind=None):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if kind is None or r["kind"] == kind]


def latest_state(run_dir):
    ckpt = load_checkpoint(run_dir, "latest")
    return ckpt.weights, ckpt.trainer


def assert_bit_identical(run_a, run_b):
    (wa, ta), (wb, tb) = latest_state(run_a), latest_state(run_b)
    assert ta["step"] == tb["step"]
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"weight {k} differs"
    sa, sb = ta["optimizer"]["state"], tb["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        for key in sa[i]:
            assert torch.equal(torch.as_tensor(sa[i][key]), torch.as_tensor(sb[i][key])), f"optimizer {i}.{key}"
    assert torch.equal(ta["rng"]["torch"], tb["rng"]["torch"])


# ------------------------------------------------------------------------------------------- models


@pytest.mark.parametrize("kind", ["dnc", "lstm"])
@pytest.mark.parametrize("embedding", [None, 5])
def test_models_map_word_ids_to_vocabulary_logits(kind, embedding):
    V = 9
    model = build_model(preset("tiny", model=kind, embedding=embedding), V)
    ids = torch.tensor([[0, 3, V, 8], [V, V, 1, 2]])  # V is the unknown word
    logits, _, trace = model.trace(ids)
    assert logits.shape == (2, 4, V)
    assert (trace["write_weights"].shape == (2, 4, 8)) if kind == "dnc" else trace == {}
    if embedding is None:  # one-hot: exactly V-way, the unknown word is the zero vector
        x = model.encode(ids)
        assert x.shape == (2, 4, V) and torch.equal(x.sum(-1), (ids < V).float())
    for module in model.modules():  # forget gates start at 1 (Sonnet's LSTM, as in DeepMind's DNC)
        if isinstance(module, (nn.LSTM, nn.LSTMCell)):
            H, suffix = module.hidden_size, "_l0" if isinstance(module, nn.LSTM) else ""
            biases = dict(module.named_parameters())
            forget = biases[f"bias_ih{suffix}"][H : 2 * H] + biases[f"bias_hh{suffix}"][H : 2 * H]
            assert torch.all(forget == 1.0)


def test_bypass_dropout_only_drops_the_direct_path_while_training():
    torch.manual_seed(0)
    plain = build_model(preset("tiny"), 9)
    torch.manual_seed(0)
    dropped = build_model(preset("tiny", bypass_dropout=0.5), 9)
    assert plain.state_dict().keys() == dropped.state_dict().keys()  # checkpoints stay interchangeable
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), dropped.state_dict().values()))
    ids = torch.randint(0, 9, (2, 6))
    plain.eval(), dropped.eval()
    assert torch.equal(plain(ids)[0], dropped(ids)[0])  # evaluation: no dropout
    dropped.train()
    assert not torch.equal(dropped(ids)[0], plain(ids)[0])


# ------------------------------------------------------------------------------------------ masking


@pytest.mark.parametrize("kind", ["dnc", "lstm"])
def test_padding_changes_neither_outputs_state_nor_loss(kind):
    torch.manual_seed(0)
    model = build_model(preset("tiny", model=kind), 9)
    short = torch.tensor([[1, 2, 3, 4, 5]])  # [1, 5]
    targets = torch.tensor([[-100, -100, 3, -100, 7]])
    alone_logits, alone_state = model(short, mask=torch.ones(1, 5, dtype=torch.bool))
    alone_loss, _ = answer_loss(alone_logits, targets)

    long = torch.randint(0, 9, (1, 9))
    ids = torch.cat([torch.cat([short, torch.tensor([[8, 8, 0, 6]])], 1), long])  # garbage in the padding
    mask = torch.tensor([[True] * 5 + [False] * 4, [True] * 9])
    padded_targets = torch.cat([torch.cat([targets, torch.full((1, 4), -100)], 1), torch.full((1, 9), -100)])
    logits, state = model(ids, mask=mask)
    loss, stats = answer_loss(logits, padded_targets)

    torch.testing.assert_close(logits[:1, :5], alone_logits, atol=1e-6, rtol=1e-5)
    assert torch.all(logits[0, 5:] == 0)  # padded outputs are zero
    torch.testing.assert_close(loss, alone_loss, atol=1e-6, rtol=1e-5)
    assert int(stats["tokens"]) == 2
    flat = lambda s: torch.cat([t[:, :1].flatten() if kind == "lstm" else t[:1].flatten() for t in _leaves(s)])  # noqa: E731
    torch.testing.assert_close(flat(state), flat(alone_state), atol=1e-6, rtol=1e-5)


def _leaves(tree):
    if isinstance(tree, torch.Tensor):
        return [tree]
    return [leaf for item in tree for leaf in _leaves(item)]


# --------------------------------------------------------------------------------------- evaluation


def test_question_results_on_a_hand_made_batch():
    V, T = 5, 7
    targets = torch.full((2, T), -100)
    question = torch.full((2, T), -1)
    targets[0, 3], question[0, 3] = 2, 0  # story 0 (task 1): q0 one word
    targets[0, 6], question[0, 6] = 4, 1  # q1 one word
    targets[1, 2], question[1, 2] = 1, 0  # story 1 (task 8): q0 two words
    targets[1, 3], question[1, 3] = 3, 0
    targets[1, 5], question[1, 5] = 0, 1  # q1 one word
    predicted = torch.zeros(2, T, dtype=torch.long)
    predicted[0, 3], predicted[0, 6] = 2, 1  # right, wrong
    predicted[1, 2], predicted[1, 3], predicted[1, 5] = 1, 0, 0  # right + wrong (question wrong), right
    logits = nn.functional.one_hot(predicted, V).float()
    batch = {"targets": targets, "question": question, "task": torch.tensor([1, 8]), "story": torch.tensor([4, 9])}
    r = question_results(logits, batch)
    assert r["task"].tolist() == [1, 1, 8, 8]
    assert r["story"].tolist() == [4, 4, 9, 9]
    assert r["question"].tolist() == [0, 1, 0, 1]
    assert r["correct"].tolist() == [True, False, False, True]


class ConstantModel(nn.Module):
    """Always answers word `word`."""

    def __init__(self, vocab_size: int, word: int):
        super().__init__()
        self.vocab_size, self.word = vocab_size, word
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, ids, state=None, mask=None):
        logits = torch.zeros(*ids.shape, self.vocab_size)
        logits[..., self.word] = 1.0
        return logits, None


def test_evaluate_babi_counts_a_question_right_only_if_every_answer_word_is(tiny_data):
    vocab = tiny_data.vocab
    word = "football"
    metrics = evaluate_babi(ConstantModel(vocab.size, vocab.encode([word])[0]), tiny_data.valid, batch_size=5)
    expected = {}
    for row in tiny_data.valid:
        for answer in row["answers"]:
            ok = all(w == word for w in answer.split(","))
            right, total = expected.get(row["task"], (0, 0))
            expected[row["task"]] = (right + ok, total + 1)
    errors = {t: 1 - right / total for t, (right, total) in expected.items()}
    assert sorted(errors) == [1, 8]
    assert any(0 < e < 1 for e in errors.values())  # the check is not trivial
    for t, e in errors.items():
        assert metrics[f"error_task_{t}"] == pytest.approx(e)
    assert metrics["error"] == pytest.approx(sum(errors.values()) / 2)
    assert metrics["questions"] == sum(total for _, total in expected.values())
    assert metrics["failed_tasks"] == sum(e > 0.05 for e in errors.values())

    few = BabiTask(tiny_data, valid_stories=2).evaluate(ConstantModel(vocab.size, 0))  # 2 stories per task
    stories = [row for t in (1, 8) for row in [r for r in tiny_data.valid if r["task"] == t][:2]]
    assert few["questions"] == sum(len(row["questions"]) for row in stories)


def test_babi_task_batches_are_padded_buckets_and_deterministic(tiny_data):
    a, b = BabiTask(tiny_data, batch_size=5, seed=3), BabiTask(tiny_data, batch_size=5, seed=3)
    steps = len(tiny_data.train) // 5 + 3  # into the second epoch
    for step in range(steps):
        x, y = a.next_batch(step), b.next_batch(step)
        assert all(torch.equal(x[k], y[k]) for k in x)
        assert x["mask"][:, 0].all() and ((x["targets"] != -100) <= x["mask"]).all()
    assert a.state_dict()["epoch"] == 1
    c = BabiTask(tiny_data, batch_size=5, seed=3)
    c.load_state_dict(a.state_dict())  # resuming mid-epoch continues the same stream
    x, y = a.next_batch(steps), c.next_batch(steps)
    assert all(torch.equal(x[k], y[k]) for k in x)


# ------------------------------------------------------------------------------------------- resume


def run_toy(tmp_path, name, max_steps, resume=False, seed_model=0, **changes):
    torch.manual_seed(seed_model)
    model = build_model(preset("tiny"), 6)
    config = quiet_config(optimizer="rmsprop", lr=1e-2, max_steps=max_steps, eval_every=2, **changes)
    return fit(model, ToyTask(seed=5), config, tmp_path / name, {"kind": "toy"}, resume=resume)


def test_stop_and_resume_gives_bit_identical_weights(tmp_path):
    run_toy(tmp_path, "unbroken", 6)
    first = run_toy(tmp_path, "broken", 3)
    assert first["step"] == 3
    resumed = run_toy(tmp_path, "broken", 6, resume=True, seed_model=99)  # weights come from the checkpoint
    assert resumed["step"] == 6
    assert_bit_identical(tmp_path / "unbroken", tmp_path / "broken")
    steps = [r["step"] for r in metrics_rows(tmp_path / "broken", "train")]
    assert steps == [1, 2, 3, 4, 5, 6]  # the log continues without duplicates


def test_resume_of_a_babi_run_is_bit_identical(tmp_path, tiny_babi_dir):
    data_config = DataConfig(tasks="1,8", data_dir=str(tiny_babi_dir), valid_fraction=0.2)
    config = quiet_config(max_steps=6, eval_every=4, batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_babi(preset("tiny"), data_config, config, tmp_path / "a")
        train_babi(preset("tiny"), data_config, quiet_config(max_steps=3, eval_every=4, batch_size=8), tmp_path / "b")
        train_babi(preset("tiny"), data_config, config, tmp_path / "b", resume=True,
                   given={"max_steps": 6})
    assert_bit_identical(tmp_path / "a", tmp_path / "b")


def test_sigterm_finishes_the_step_saves_and_resumes_exactly(tmp_path):
    def kill_at_2(step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    torch.manual_seed(0)
    config = quiet_config(optimizer="rmsprop", lr=1e-2, max_steps=6, eval_every=2)
    task = ToyTask(seed=5, on_step=kill_at_2)
    summary = fit(build_model(preset("tiny"), 6), task, config, tmp_path / "killed", {"kind": "toy"})
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back
    assert summary["stopped"] and summary["stop_reason"] == "SIGTERM" and summary["step"] == 3
    assert load_checkpoint(tmp_path / "killed", "latest").step == 3
    assert metrics_rows(tmp_path / "killed", "stopped")[0]["step"] == 3
    run_toy(tmp_path, "killed", 6, resume=True)
    run_toy(tmp_path, "unbroken", 6)
    assert_bit_identical(tmp_path / "unbroken", tmp_path / "killed")


def test_a_slow_first_step_is_announced_before_it(tmp_path, capsys, monkeypatch):
    """A compiled (or first-kernel-load) first step can take minutes: a line says so before it, so that a piped
    log is not silent; a model without a DNC memory gets no such line."""
    monkeypatch.setattr("babi_dnc.train.loop.compile_model", lambda model: None)  # the note, not the compile
    config = quiet_config(max_steps=2, eval_every=0, log_every=1, progress=True, compile=True)
    fit(build_model(preset("tiny"), 6), ToyTask(seed=5), config, tmp_path / "dnc", {"kind": "toy"})
    lines = capsys.readouterr().err.splitlines()
    note = next(i for i, line in enumerate(lines)
                if line.startswith("the first step ") and "compiles the DNC's time step" in line)
    assert note < next(i for i, line in enumerate(lines) if line.startswith("step 1/2")), lines
    fit(build_model(preset("tiny", model="lstm"), 6), ToyTask(seed=5), config, tmp_path / "lstm", {"kind": "toy"})
    assert "the first step" not in capsys.readouterr().err


# --------------------------------------------------------------------------------------- non-finite


def test_a_nonfinite_loss_skips_the_update_and_is_logged(tmp_path):
    torch.manual_seed(0)
    summary = fit(build_model(preset("tiny"), 6), ToyTask(seed=5, nan_at={1, 2}),
                  quiet_config(max_steps=3, eval_every=100), tmp_path / "nan", {"kind": "toy"})
    torch.manual_seed(0)
    fit(build_model(preset("tiny"), 6), ToyTask(seed=5), quiet_config(max_steps=1, eval_every=100),
        tmp_path / "one", {"kind": "toy"})
    assert summary["nonfinite"] == 2 and summary["reloads"] == 0
    rows = metrics_rows(tmp_path / "nan", "nonfinite")
    assert [(r["step"], r["count"], r["streak"]) for r in rows] == [(2, 1, 1), (3, 2, 2)]
    assert math.isnan(rows[0]["loss"])
    skipped, one = load_checkpoint(tmp_path / "nan", "latest"), load_checkpoint(tmp_path / "one", "latest")
    for k, v in skipped.weights.items():  # steps 2 and 3 changed nothing: the weights are those of step 1
        assert torch.isfinite(v).all() and torch.equal(v, one.weights[k]), k


def test_nonfinite_steps_in_a_row_reload_the_last_checkpoint_and_lower_the_lr(tmp_path):
    def poison(step):  # weights turn NaN at step index 2: the loss is NaN from then on
        if step == 2:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))

    torch.manual_seed(0)
    model = build_model(preset("tiny"), 6)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    config = quiet_config(max_steps=5, eval_every=3, nonfinite_patience=2, lr_backoff=0.25, lr=1e-2)
    summary = fit(model, ToyTask(seed=5, on_step=poison), config, tmp_path / "run", {"kind": "toy"})
    run = tmp_path / "run"
    assert summary["nonfinite"] == 2 and summary["reloads"] == 1
    refused = metrics_rows(run, "refused_save")  # the NaN weights at step 3 were never saved
    assert {r["tag"] for r in refused} >= {"latest"} and all(r["step"] == 3 for r in refused)
    (reload,) = metrics_rows(run, "reload")
    assert reload["step"] == 4 and reload["from_step"] == 0 and reload["lr_scale"] == 0.25
    assert metrics_rows(run, "train")[-1]["lr"] == pytest.approx(0.25 * 1e-2)
    latest = load_checkpoint(run, "latest")
    assert latest.step == 5 and latest.trainer["scheduler"]["lr_scale"] == 0.25
    assert all(torch.isfinite(v).all() for v in latest.weights.values())
    assert not all(torch.equal(latest.weights[k], initial[k]) for k in initial)  # step 5 trained after the reload
    for tag in ("best", "latest"):
        ckpt = load_checkpoint(run, tag) if (run / "checkpoints" / tag).exists() else None
        assert ckpt is None or all(torch.isfinite(v).all() for v in ckpt.weights.values())


# ------------------------------------------------------------------------------------ run directory


def test_the_session_run_has_the_documented_layout(tiny_run):
    assert (tiny_run / "config.json").is_file() and (tiny_run / "vocab.json").is_file()
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["kind"] == "babi" and set(config) == {"kind", "model", "data", "train", "task", "training_data"}
    assert config["training_data"] == []  # the tiny folder has every file it trains on, none rewritten
    for tag in ("latest", "best"):
        assert sorted(p.name for p in (tiny_run / "checkpoints" / tag).iterdir()) == [
            "meta.json", "model.safetensors", "trainer.pt"]
    evals = metrics_rows(tiny_run, "eval")
    assert [r["step"] for r in evals] == [4, 8] and {"error", "error_task_1", "error_task_8"} <= set(evals[0])
    assert [r["step"] for r in metrics_rows(tiny_run, "train")] == list(range(1, 9))
    assert any((tiny_run / "tb").iterdir())
    run = load_run(tiny_run)
    best = min(evals, key=lambda r: r["error"])
    assert run.step == best["step"] and run.metrics["error"] == best["error"]
    assert run.vocab.size == run.model.vocab_size and run.model.has_memory


def test_shard_batch_gives_each_process_its_rows():
    batch = {"ids": torch.arange(10).view(5, 2), "scalar": torch.tensor(3), "name": "x"}
    parts = [shard_batch(batch, DistEnv(rank=r, world_size=2)) for r in range(2)]
    assert torch.equal(torch.cat([p["ids"] for p in parts]), batch["ids"])
    assert parts[0]["ids"].shape[0] == 3 and parts[1]["scalar"] == 3 and parts[1]["name"] == "x"


# ---------------------------------------------------------------------------------------------- CLI


def test_train_command(tmp_path, tiny_babi_dir):
    from typer.testing import CliRunner

    from app import app

    runner = CliRunner()
    out = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--max-steps", "3", "--data-dir", str(tiny_babi_dir), "--tasks", "1,8",
            "--out", str(out), "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "best val error" in result.output
    assert load_checkpoint(out, "latest").step == 3

    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.output and "--restart" in again.output

    other = runner.invoke(app, [*args, "--resume", "--model", "lstm"])  # not silently the saved model
    assert other.exit_code == 2 and "was trained with --model dnc, not --model lstm" in other.output
    more = runner.invoke(app, [*args[:4], "5", *args[5:], "--resume", "--model", "dnc"])
    assert more.exit_code == 0, more.output
    assert "dnc on bAbI en-10k, tasks 1,8" in more.output
    assert load_checkpoint(out, "latest").step == 5
    assert json.loads((out / "config.json").read_text())["train"]["max_steps"] == 5  # what the run continued with
    seed = runner.invoke(app, [*args, "--resume", "--seed", "3"])  # a seed is the run's: refused, not ignored
    assert seed.exit_code == 2 and "was trained with --seed 0, not --seed 3" in seed.output
    fewer = runner.invoke(app, [*args[:4], "6", *args[5:], "--resume", "--eval-stories", "1"])  # taken anew
    assert fewer.exit_code == 0, fewer.output
    assert "resumes with --max-steps 6 (was 5), --eval-stories 1 (was None)" in " ".join(fewer.output.split())
    assert json.loads((out / "config.json").read_text())["task"]["valid_stories"] == 1

    seeds = runner.invoke(app, ["train", "--model", "lstm", "--preset", "tiny", "--max-steps", "2", "--seeds", "2",
                                "--seed", "7", "--data-dir", str(tiny_babi_dir), "--tasks", "1",
                                "--out", str(tmp_path / "seeds"), "--no-progress", "--augment"])
    assert seeds.exit_code == 0, seeds.output
    for n in (0, 1):
        config = json.loads((tmp_path / "seeds" / f"seed-{n}" / "config.json").read_text())
        assert config["train"]["seed"] == 7 + n and config["model"]["model"] == "lstm"
        assert config["task"]["augment"] is True  # the tiny preset's default is off
    assert "over 2 runs" in seeds.output

    bad = runner.invoke(app, ["train", "--preset", "huge", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--preset" in bad.output


@pytest.mark.parametrize("minutes, saved_steps", [(None, [0, 4]), (0.0, [0, 1, 2, 3, 4])])
def test_latest_is_also_saved_by_the_clock(tmp_path, monkeypatch, minutes, saved_steps):
    import babi_dnc.train.loop as loop

    saves = []
    real = loop.save_checkpoint
    monkeypatch.setattr(loop, "save_checkpoint",
                        lambda run_dir, tag, model, state, meta: saves.append((tag, meta["step"])) or real(
                            run_dir, tag, model, state, meta))
    torch.manual_seed(0)
    config = quiet_config(max_steps=4, eval_every=100, checkpoint_minutes=minutes)
    fit(build_model(preset("tiny"), 6), ToyTask(), config, tmp_path / "run", {"kind": "toy"})
    assert [step for tag, step in saves if tag == "latest"] == saved_steps


def test_a_task_that_asks_to_stop_ends_training_at_that_evaluation(tmp_path):
    class StopsAtSecondEval(ToyTask):
        evals = 0

        def should_stop(self, metrics):
            self.evals += 1
            return self.evals == 2

    config = quiet_config(optimizer="rmsprop", lr=1e-2, max_steps=20, eval_every=3)
    summary = fit(build_model(preset("tiny"), 6), StopsAtSecondEval(seed=5), config, tmp_path / "run", {"kind": "toy"})
    assert summary["step"] == 6 and summary["stop_reason"] == "solved" and not summary["stopped"]
    assert [r["step"] for r in metrics_rows(tmp_path / "run", "eval")] == [3, 6]
    assert load_checkpoint(tmp_path / "run", "latest").step == 6


def test_a_run_saved_before_the_task_section_keeps_its_settings(tmp_path):
    from babi_dnc.babi_task import BabiTaskConfig
    from babi_dnc.checkpoint import read_config

    old = {"kind": "babi", "data": {"tasks": "1", "valid_stories": 5},
           "train": {"augment": True, "task_sampling": "error", "lr": 0.1}}
    expected = BabiTaskConfig(augment=True, task_sampling="error", valid_stories=5)
    assert BabiTaskConfig.from_saved(old, tmp_path) == expected
    assert BabiTaskConfig.from_saved({**old, "task": {}}, tmp_path) == BabiTaskConfig()  # the new section wins
    saved = read_config(Path(__file__).parents[1] / "benchmarks" / "babi-cpu-2026-12-05" / "dnc-cur-a")  # old layout
    assert "task" not in saved and BabiTaskConfig.from_saved(saved, tmp_path).augment


def test_every_setting_with_a_flag_is_the_train_option_of_the_same_name():
    """A new option is its dataclass field (with its flag) and a Typer parameter of the field's name: the
    command passes each setting on by that name, so the two must agree."""
    import typing

    from babi_dnc.babi_task import BabiTaskConfig
    from babi_dnc.config import flags
    from babi_dnc.models import ModelConfig
    from cli.train import train_command

    hints = typing.get_type_hints(train_command, include_extras=True)
    infos = {name: hint.__metadata__[0] for name, hint in hints.items() if name != "return"}
    options = {name: (info.param_decls or (info.default,))[0].split("/")[0] for name, info in infos.items()}
    for cls in (ModelConfig, DataConfig, TrainConfig, BabiTaskConfig):
        for field, flag in flags(cls).items():
            assert options.get(field) == flag, (cls.__name__, field, flag, options.get(field))
