"""`babi-dnc bench`: the training-step benchmark (see babi_dnc/bench.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from babi_dnc.errors import UserError

from .common import console


def bench(
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    model: Annotated[str, typer.Option(help="dnc or lstm")] = "dnc",
    preset: Annotated[str, typer.Option(help="paper, small, joint or tiny")] = "paper",
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    seq_len: Annotated[int, typer.Option(min=1)] = 100,
    steps: Annotated[int, typer.Option(min=1, help="timed steps (the median is reported)")] = 5,
    warmup: Annotated[int, typer.Option(min=0)] = 2,
    amp: Annotated[bool, typer.Option(help="bf16 autocast of the controller (CUDA)")] = False,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the DNC's time step")] = False,
    checkpoint_steps: Annotated[int | None, typer.Option(help="recompute memory per chunk of steps")] = None,
    backward_reader: Annotated[int, typer.Option(min=0, help="a backward reader of this size (0: none)")] = 0,
    cuda_graph: Annotated[bool, typer.Option("--cuda-graph", help="capture forward and backward as CUDA graphs")] = (
        False
    ),
    threads: Annotated[int | None, typer.Option(help="CPU threads")] = None,
    data: Annotated[bool, typer.Option("--data", help="time real bAbI batches from the bucketed loader")] = False,
    data_dir: Annotated[Path | None, typer.Option(help="local bAbI folder or .tar.gz (for --data)")] = None,
    vs_peer: Annotated[bool, typer.Option("--vs-peer", help="also time the PyPI `dnc` package")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
):
    """Time full training steps (forward, backward, optimizer) at a preset's sizes."""
    from babi_dnc.bench import BenchConfig, run_bench
    from babi_dnc.train.config import MAX_THREADS

    if model not in ("dnc", "lstm"):
        raise UserError(f"--model must be dnc or lstm, not {model!r}.")
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise UserError(f"--threads must be from 1 to {MAX_THREADS}, not {threads}.")
    cfg = BenchConfig(
        model=model, preset=preset, device=device, batch_size=batch_size, seq_len=seq_len, steps=steps,
        warmup=warmup, amp=amp, compile=compile, checkpoint_steps=checkpoint_steps, threads=threads,
        backward_reader=backward_reader,
        cuda_graph=cuda_graph,
        data_dir=(str(data_dir) if data_dir else _data_dir_or_env()) if data else None,
    )
    if data and cfg.data_dir is None:
        raise UserError("--data needs bAbI files: pass --data-dir PATH or set BABI_DNC_DATA.")
    results = run_bench(cfg, vs_peer=vs_peer)
    if json_out:
        print(json.dumps(results, indent=2))
        return
    table = Table(title=f"training step, {preset} preset, batch {batch_size}" + ("" if data else f" x {seq_len} steps"))
    for col in ("model", "step s", "forward s", "backward s", "stories/s", "story-steps/s", "peak memory"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r["model"], f"{r['step_s']:.3f}", f"{r['forward_s']:.3f}", f"{r['backward_s']:.3f}",
            f"{r['stories_per_s']:.1f}", f"{r['story_steps_per_s']:,.0f}",
            f"{r['peak_memory_bytes'] / 2**30:.2f} GiB",
        )
    console.print(table)
    link = f", link: {results[0]['link']}" if "link" in results[0] else ""
    console.print(
        f"device: {results[0]['device_name']}, torch {results[0]['torch']}, {results[0]['threads']} threads{link}"
    )
    if vs_peer:
        peer = results[-1]
        console.print(
            f"ours vs peer: [bold]{peer['speedup_vs_peer']:.2f}x[/] story-steps/s, "
            f"[bold]{peer['memory_ratio_vs_peer']:.2f}x[/] peak memory"
        )


def _data_dir_or_env() -> str | None:
    return os.environ.get("BABI_DNC_DATA") or None
