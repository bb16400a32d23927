"""Checkpoints: exact round trip, atomic swap under crashes, validation of broken files, run lookup."""

from __future__ import annotations

import json
import os

import pytest
import torch

from babi_dnc import checkpoint as ck
from babi_dnc.checkpoint import (
    load_checkpoint,
    read_config,
    resolve_checkpoint,
    save_checkpoint,
    write_run_files,
)
from babi_dnc.data import Vocabulary
from babi_dnc.data.config import DataConfig
from babi_dnc.errors import CheckpointError
from babi_dnc.models import build_model, preset
from babi_dnc.runs import expand, find_runs, load_run, read_vocab
from babi_dnc.train import TrainConfig, make_optimizer, rng_state

WORDS = sorted(["-", ".", "?", "bathroom", "is", "mary", "moved", "the", "to", "where"])


def make_model(seed: int = 0, model: str = "dnc", **changes):
    torch.manual_seed(seed)
    return build_model(preset("tiny", model=model, **changes), len(WORDS))


def trained_state(model):
    """An optimiser with non-trivial state after one step, and trainer state around it."""
    optimizer = make_optimizer(model.parameters(), TrainConfig(optimizer="rmsprop", lr=1e-3))
    logits, _ = model(torch.randint(0, len(WORDS), (2, 5)))
    logits.square().mean().backward()
    optimizer.step()
    return optimizer, {"step": 7, "optimizer": optimizer.state_dict(), "rng": rng_state(), "task": {"epoch": 2}}


def assert_same_tensors(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert torch.equal(a[k], b[k]), k


def weights_of(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_round_trip_every_tensor_config_and_vocab(tmp_path):
    model = make_model(0)
    optimizer, trainer = trained_state(model)
    config = {"kind": "babi", "model": preset("tiny").to_dict(), "data": {"tasks": "1"}, "train": {"lr": 1e-3}}
    vocab = Vocabulary(WORDS)
    write_run_files(tmp_path, config, {"vocab.json": vocab.to_dict()})
    path = save_checkpoint(tmp_path, "best", model, trainer, {"step": 7, "metrics": {"error": 0.25}})
    assert path == tmp_path / "checkpoints" / "best"
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "model.safetensors", "trainer.pt"]

    other = make_model(1)
    assert not all(torch.equal(a, b) for a, b in zip(weights_of(other).values(), weights_of(model).values()))
    ckpt = load_checkpoint(tmp_path, "best", model=other)
    assert_same_tensors(weights_of(other), weights_of(model))
    assert ckpt.step == 7 and ckpt.meta["metrics"] == {"error": 0.25}
    # optimiser state, RNG state and task state come back exactly
    fresh = make_optimizer(other.parameters(), TrainConfig(optimizer="rmsprop", lr=1e-3))
    fresh.load_state_dict(ckpt.trainer["optimizer"])
    for saved, loaded in zip(optimizer.state.values(), fresh.state.values(), strict=True):
        for key in saved:
            assert torch.equal(torch.as_tensor(saved[key]), torch.as_tensor(loaded[key]))
    assert torch.equal(ckpt.trainer["rng"]["torch"], trainer["rng"]["torch"])
    assert ckpt.trainer["rng"]["python"] == trainer["rng"]["python"]
    assert ckpt.trainer["task"] == {"epoch": 2}
    assert read_config(tmp_path) == config
    assert read_vocab(tmp_path) == vocab

    run = load_run(tmp_path, "best")
    assert_same_tensors(weights_of(run.model), weights_of(model))
    assert run.step == 7 and run.vocab == vocab and not run.model.training and run.checkpoint.tag == "best"


def test_load_run_of_the_lstm_baseline_and_fallback_to_latest(tmp_path):
    model = make_model(3, model="lstm", embedding=5)
    write_run_files(tmp_path, {"kind": "babi", "model": preset("tiny", model="lstm", embedding=5).to_dict(),
                               "data": {}, "train": {}}, {"vocab.json": Vocabulary(WORDS).to_dict()})
    save_checkpoint(tmp_path, "latest", model, {}, {"step": 3})
    run = load_run(tmp_path)  # no "best" yet: "latest"
    assert run.step == 3 and run.checkpoint.tag == "latest" and not run.model.has_memory
    assert run.data == DataConfig() and run.train == TrainConfig()  # the defaults live in the dataclasses only
    assert_same_tensors(weights_of(run.model), weights_of(model))


class Killed(BaseException):
    """The process dying at this point: nothing of save_checkpoint's error handling runs."""


def crash_on_rename(monkeypatch, call: int):
    """Make the `call`-th os.rename inside checkpoint.py raise, as if the process died there."""
    real, calls = os.rename, {"n": 0}

    def rename(src, dst):
        calls["n"] += 1
        if calls["n"] == call:
            raise Killed
        return real(src, dst)

    monkeypatch.setattr(ck.os, "rename", rename)


@pytest.mark.parametrize("call", [1, 2])
def test_a_crash_during_the_swap_leaves_the_previous_checkpoint(tmp_path, monkeypatch, call):
    old_model, new_model = make_model(0), make_model(1)
    save_checkpoint(tmp_path, "latest", old_model, {"step": 1}, {"step": 1})
    crash_on_rename(monkeypatch, call)  # 1: before <tag> -> .old-<tag>; 2: between the two renames
    with pytest.raises(Killed):
        save_checkpoint(tmp_path, "latest", new_model, {"step": 2}, {"step": 2})
    monkeypatch.undo()
    if call == 2:  # <tag> is gone, .old-<tag> holds the previous checkpoint
        assert not (tmp_path / "checkpoints" / "latest").exists()
        assert resolve_checkpoint(tmp_path, "latest").name == ".old-latest"
    probe = make_model(2)
    assert load_checkpoint(tmp_path, "latest", model=probe).step == 1
    assert_same_tensors(weights_of(probe), weights_of(old_model))

    save_checkpoint(tmp_path, "latest", new_model, {"step": 3}, {"step": 3})  # the next save heals it
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest"]
    assert load_checkpoint(tmp_path, "latest", model=probe).step == 3
    assert_same_tensors(weights_of(probe), weights_of(new_model))


def test_a_crash_while_writing_files_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, "latest", make_model(0), {"step": 1}, {"step": 1})

    def dies(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ck.torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, "latest", make_model(1), {"step": 2}, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(tmp_path, "latest").step == 1
    save_checkpoint(tmp_path, "latest", make_model(1), {"step": 2}, {"step": 2})
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["latest"]  # the half-written .tmp is gone


def error_message(excinfo) -> str:
    message = str(excinfo.value)
    assert message.endswith(".") and message.count(". ") == 0, message  # one sentence
    return message


def test_corrupt_or_missing_files_raise_checkpoint_error(tmp_path):
    model = make_model(0)
    save_checkpoint(tmp_path, "latest", model, {"step": 1}, {"step": 1})
    folder = tmp_path / "checkpoints" / "latest"
    weights = folder / "model.safetensors"
    original = weights.read_bytes()

    weights.write_bytes(original[: len(original) // 2])  # truncated
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path, "latest")
    assert "checksum" in error_message(e)
    with pytest.raises(CheckpointError) as e:  # without the checksum, safetensors itself refuses
        load_checkpoint(tmp_path, "latest", verify=False)
    assert "cannot be read" in error_message(e)

    weights.write_bytes(original)
    (folder / "trainer.pt").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path, "latest", verify=False)
    assert load_checkpoint(tmp_path, "latest", trainer=False).step == 1  # inference needs only the weights

    (folder / "trainer.pt").unlink()
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path, "latest")
    assert "missing" in error_message(e)

    (folder / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path, "latest")
    assert "corrupt" in error_message(e)

    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path, "best")
    assert "no checkpoint 'best'" in error_message(e)
    with pytest.raises(CheckpointError):
        load_run(tmp_path / "nowhere")


def test_weights_that_do_not_fit_the_model_raise_checkpoint_error(tmp_path):
    save_checkpoint(tmp_path, "latest", make_model(0), {}, {"step": 1})
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path, "latest", model=make_model(0, controller_size=17))
    assert "shape" in error_message(e)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path, "latest", model=make_model(0, model="lstm"))
    assert "do not fit" in error_message(e)


def test_corrupt_config_or_vocab_raise_checkpoint_error(tmp_path):
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(CheckpointError):
        load_run(tmp_path)
    write_run_files(tmp_path, {"kind": "babi", "model": preset("tiny").to_dict()})
    (tmp_path / "vocab.json").write_text(json.dumps({"words": ["b", "a"]}))  # unsorted: ids would shift
    with pytest.raises(CheckpointError):
        load_run(tmp_path)


def test_find_runs(tmp_path):
    assert find_runs(tmp_path / "missing") == []
    for n in (10, 2, 0):
        write_run_files(tmp_path / f"seed-{n}", {"kind": "babi"})
    (tmp_path / "notes").mkdir()
    assert [p.name for p in find_runs(tmp_path)] == ["seed-0", "seed-2", "seed-10"]
    assert find_runs(tmp_path / "seed-2") == [tmp_path / "seed-2"]
    assert expand(tmp_path) == find_runs(tmp_path)
    for missing in (tmp_path / "missing", tmp_path / "notes"):  # no folder; a folder without runs
        with pytest.raises(CheckpointError, match="pass a folder written by"):
            expand(missing)
