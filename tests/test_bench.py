"""Smoke tests of `babi-dnc bench` (tiny sizes): every mode runs and reports consistent figures."""

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from app import app
from babi_dnc.bench import BenchConfig, measure

runner = CliRunner()
TINY = ["--preset", "tiny", "--batch-size", "2", "--seq-len", "6", "--steps", "2", "--warmup", "1", "--json"]


@pytest.mark.parametrize("model", ["dnc", "lstm"])
def test_bench_reports_consistent_figures(model):
    r = measure(BenchConfig(model=model, preset="tiny", batch_size=3, seq_len=7, steps=2, warmup=1))
    assert r["story_steps_per_batch"] == 21
    assert r["stories_per_s"] == pytest.approx(3 / r["step_s"])
    assert r["steps_per_s"] == pytest.approx(1 / r["step_s"])
    assert 0 < r["forward_s"] < r["step_s"] and 0 < r["backward_s"] < r["step_s"]
    assert r["peak_memory_bytes"] >= 0 and r["parameters"] > 0


def test_bench_times_a_model_with_a_backward_reader():
    with_reader = measure(BenchConfig(preset="tiny", batch_size=3, seq_len=7, steps=1, warmup=0, backward_reader=8))
    plain = measure(BenchConfig(preset="tiny", batch_size=3, seq_len=7, steps=1, warmup=0))
    # its LSTM cell (4 gates of 8) over the 159-wide one-hot words, and the controller's (4 x 16) 8 wider inputs
    reader = 4 * 8 * (159 + 8 + 2) + 4 * 16 * 8
    assert with_reader["backward_reader"] == 8 and with_reader["story_steps_per_batch"] == 21
    assert with_reader["parameters"] - plain["parameters"] == reader


def test_bench_command_json_runs_in_a_subprocess():
    result = runner.invoke(app, ["bench", *TINY])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["model"] == "dnc" and row["batch_size"] == 2 and row["seq_len"] == 6
    assert row["story_steps_per_s"] > 0
    assert row["link"] == "compiled CPU link kernel" or row["link"].startswith("PyTorch link (")


def test_retain_freed_memory_sets_glibc_once_and_can_be_turned_off(monkeypatch):
    import ctypes.util
    import sys

    from babi_dnc import malloc

    glibc = sys.platform.startswith("linux") and "libc.so" in (ctypes.util.find_library("c") or "")
    malloc.retain_freed_memory.cache_clear()
    try:
        monkeypatch.setenv(malloc.ENV_SWITCH, "default")
        assert malloc.retain_freed_memory() is False
        malloc.retain_freed_memory.cache_clear()
        monkeypatch.delenv(malloc.ENV_SWITCH)
        assert malloc.retain_freed_memory() is glibc  # mallopt accepted both settings
        monkeypatch.setenv(malloc.ENV_SWITCH, "default")
        assert malloc.retain_freed_memory() is glibc  # cached: once per process
    finally:
        malloc.retain_freed_memory.cache_clear()


def test_bench_on_real_batches(tiny_babi_dir):
    result = runner.invoke(app, ["bench", *TINY, "--data", "--data-dir", str(tiny_babi_dir)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["data_dir"] == str(tiny_babi_dir) and row["story_steps_per_s"] > 0


def test_bench_data_mode_without_data_is_one_sentence(monkeypatch):
    monkeypatch.delenv("BABI_DNC_DATA", raising=False)
    result = runner.invoke(app, ["bench", *TINY, "--data"])
    assert result.exit_code == 2 and "--data-dir" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(importlib.util.find_spec("dnc") is None, reason="the peer package `dnc` is not installed")
def test_bench_against_the_peer():
    result = runner.invoke(app, ["bench", *TINY, "--vs-peer"])
    assert result.exit_code == 0, result.output
    ours, peer = json.loads(result.output)
    assert peer["model"] == "peer"
    assert peer["speedup_vs_peer"] == pytest.approx(ours["story_steps_per_s"] / peer["story_steps_per_s"])
