"""`babi-dnc bench`: time full training steps (forward, backward, optimizer) of the DNC and the LSTM baseline.

Each measurement runs in a fresh subprocess, so the peak memory it reports (CUDA max allocated, or the
process's high-water resident set on CPU, less the resident set before the model was built)
belongs to that model alone; the timings are medians over `steps` steps after `warmup` steps. On a CPU,
every subprocess (ours and the peer's) keeps freed memory for reuse as `fit` does (malloc.py), so the
figures are those of a training run, without a page fault per fresh link matrix. With
`vs_peer`, the PyPI package `dnc` (github.com/ixaxaar/pytorch-dnc, `pip install --no-deps dnc==1.1.0`) is
timed at the same sizes on the same machine, one subprocess after ours. It computes a different function
from the paper in places (its controller never sees the read vectors), so the comparison is of cost only.

Throughput: story-steps/s = batch x length / step time (the unit the paper-scale goal is stated in).
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

from . import kernels
from .cuda_graphs import install_cuda_graphs
from .errors import UserError
from .kernels import status as kernel_status
from .malloc import retain_freed_memory
from .models import build_model, compile_model, preset

ANSWER_ID = 0  # the answer slot '-' sorts first in every bAbI vocabulary (data.Vocabulary); a backward reader's
# questions end there (random ids hold it about once every vocab_size steps)


@dataclass
class BenchConfig:
    model: str = "dnc"  # "dnc", "lstm" or "peer" (ixaxaar's dnc package)
    preset: str = "paper"
    device: str = "cpu"
    batch_size: int = 32
    seq_len: int = 100
    vocab_size: int = 159
    steps: int = 5
    warmup: int = 2
    amp: bool = False  # bf16 autocast of the controller (CUDA)
    compile: bool = False
    checkpoint_steps: int | None = None  # activation checkpointing over time (DNC)
    backward_reader: int = 0  # the backward reader's size (0: none), as ModelConfig.backward_reader
    cuda_graph: bool = False  # forward and backward of the whole unrolled model replayed as CUDA graphs
    triton: bool = True  # the Triton link kernels on CUDA (False: the PyTorch link)
    threads: int | None = None  # CPU threads (default: torch's)
    data_dir: str | None = None  # --data mode: real bAbI batches from the bucketed loader
    data_set: str = "en-10k"
    seed: int = 0


def _resident_bytes() -> int:
    """This process's resident set size now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_resident_bytes() -> int:
    """The largest resident set this process has had (the kernel's high-water mark: exact, and free,
    unlike sampling from a thread, which on a 2-core machine steals time from the step being timed)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def _build(cfg: BenchConfig, device: torch.device):
    """(model, step_input_fn): a module and a function batch -> loss for one training step."""
    V = cfg.vocab_size
    if cfg.model == "peer":
        try:
            from dnc import DNC as PeerDNC  # the PyPI package `dnc`
        except ImportError as e:
            raise UserError("--vs-peer needs the peer package: run `pip install --no-deps dnc==1.1.0`.") from e
        p = preset(cfg.preset)
        model = PeerDNC(
            input_size=V, hidden_size=p.controller_size, rnn_type="lstm", num_layers=1, nr_cells=p.memory_slots,
            cell_size=p.word_size, read_heads=p.read_heads, batch_first=True,
            gpu_id=device.index if device.type == "cuda" else -1,
        ).to(device)  # its output layer is already V-way

        def loss_fn(ids, targets, mask):
            x = torch.nn.functional.one_hot(ids, V).float()
            y, _ = model(x, (None, None, None), reset_experience=True, pass_through_memory=True)
            return torch.nn.functional.cross_entropy(y[mask], targets[mask])

        return model, loss_fn

    config = preset(cfg.preset, model=cfg.model, backward_reader=cfg.backward_reader)
    model = build_model(config, V, answer_id=ANSWER_ID).to(device)
    if cfg.checkpoint_steps and hasattr(model.core, "checkpoint_steps"):
        model.core.checkpoint_steps = cfg.checkpoint_steps
    if cfg.compile:  # the DNC's time step, not the unrolled loop
        compile_model(model, fallback=False)  # a failed compile is an error here, not an eager timing
    logits_of = _Logits(model, cfg.amp).to(device)
    if cfg.cuda_graph:  # what training uses (cuda_graphs.py): graphs per padded shape, replayed by model(...)
        graphed = install_cuda_graphs(model)
        if graphed is None:
            raise UserError("--cuda-graph needs --device cuda (and BABI_DNC_CUDA_GRAPHS unset).")

        def logits_of(ids, mask):
            with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=cfg.amp, cache_enabled=False):
                logits, _ = model(ids, mask=mask)
            if graphed.failed:  # an error here, not an eager timing
                raise RuntimeError(f"CUDA graph capture failed: {graphed.failed}")
            return logits

        logits_of.stats = graphed.stats

    def loss_fn(ids, targets, mask):
        logits = logits_of(ids, mask)  # [B, T, V]
        losses = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")
        return (losses * mask).sum() / mask.sum()  # no host synchronisation

    loss_fn.logits_of = logits_of  # measure() reports the graphs' counters from it
    return model, loss_fn


class _Logits(torch.nn.Module):
    """ids, mask -> logits: the model's inputs (word vectors and any backward reader) in float32, its core
    under bf16 autocast when asked."""

    def __init__(self, model, amp: bool):
        super().__init__()
        self.model, self.amp = model, amp

    def forward(self, ids, mask):
        x = self.model.inputs(ids, mask)  # [B, T, X]
        with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits, _ = self.model.core(x, mask=mask)
        return logits


def _batches(cfg: BenchConfig, device: torch.device):
    """An endless iterator of (ids, targets, mask): random ids of a fixed length, or real bAbI batches."""
    gen = torch.Generator().manual_seed(cfg.seed)
    if cfg.data_dir is None:
        B, T = cfg.batch_size, cfg.seq_len
        ids = torch.randint(0, cfg.vocab_size, (B, T), generator=gen).to(device)
        targets = torch.randint(0, cfg.vocab_size, (B, T), generator=gen).to(device)
        mask = torch.ones(B, T, dtype=torch.bool, device=device)
        while True:
            yield ids, targets, mask
    from .data import iterate_batches, load_babi  # here: only --data needs `datasets`, a second's import

    data = load_babi(set_name=cfg.data_set, tasks="all", data_dir=cfg.data_dir, seed=cfg.seed)
    epoch = 0
    while True:
        for batch in iterate_batches(data.train, cfg.batch_size, shuffle=True, seed=cfg.seed, epoch=epoch):
            mask = batch["mask"].to(device)
            answer = (batch["targets"] >= 0).to(device)
            yield batch["ids"].to(device), batch["targets"].clamp(min=0).to(device), mask & answer
        epoch += 1


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(cfg: BenchConfig) -> dict:
    """Time cfg.steps training steps in this process; returns the figures as a dict."""
    device = _prepare(cfg)
    rss_before = _resident_bytes() if device.type == "cpu" else 0
    model, loss_fn = _build(cfg, device)
    times = _timed_steps(cfg, device, model, loss_fn)
    step = statistics.median(times["step"])
    result = dataclasses.asdict(cfg) | {
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "step_s": step,
        "forward_s": statistics.median(times["forward"]),
        "backward_s": statistics.median(times["backward"]),
        "steps_per_s": 1 / step,
        "stories_per_s": cfg.batch_size / step,
        "story_steps_per_s": sum(times["story_steps"]) / sum(times["step"]),
        "story_steps_per_batch": statistics.median(times["story_steps"]),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if cfg.model == "dnc":  # the compiled CPU or the Triton link kernels, or why the PyTorch one ran
        result["link"] = kernel_status() if device.type == "cpu" else kernels.triton_status()
    stats = getattr(getattr(loss_fn, "logits_of", None), "stats", None)
    if stats is not None:
        result["graphs"] = dict(stats)  # captures, replays, eager calls
    if device.type == "cuda":
        result["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
        result["peak_memory_kind"] = "cuda max allocated"
    else:
        result["peak_memory_bytes"] = max(_peak_resident_bytes() - rss_before, 0)
        result["peak_memory_kind"] = "cpu resident set above start"
    return result


def _prepare(cfg: BenchConfig) -> torch.device:
    """Threads, kernels, allocator and seed as a training run would set them; the device."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is visible; use --device cpu.")
    device = torch.device(cfg.device)
    if not cfg.triton:
        kernels.use_triton(False)
    if device.type == "cpu":
        retain_freed_memory()  # as fit does: the same setting for ours and the peer
    torch.manual_seed(cfg.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def _timed_steps(cfg: BenchConfig, device: torch.device, model: torch.nn.Module, loss_fn) -> dict[str, list[float]]:
    """cfg.warmup untimed, then cfg.steps timed training steps (RMSProp, as the paper): the seconds of each
    step's forward, backward and whole step, and its story-steps."""
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4, momentum=0.9)
    batches = _batches(cfg, device)
    times: dict[str, list[float]] = {"forward": [], "backward": [], "step": [], "story_steps": []}
    for i in range(cfg.warmup + cfg.steps):
        if i == cfg.warmup and device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        ids, targets, mask = next(batches)
        _sync(device)
        t0 = time.perf_counter()
        loss = loss_fn(ids, targets, mask)
        _sync(device)
        t1 = time.perf_counter()
        loss.backward()
        _sync(device)
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        t3 = time.perf_counter()
        if i >= cfg.warmup:
            for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t0, ids.numel()), strict=True):
                times[key].append(value)
        if not torch.isfinite(loss):
            raise RuntimeError("non-finite loss in the benchmark")
    return times


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"cpu ({os.cpu_count()} cores)"


def run_isolated(cfg: BenchConfig, timeout: float | None = None) -> dict:
    """`measure(cfg)` in a fresh Python subprocess (so peak memory is the model's own)."""
    code = "import json,sys; from babi_dnc.bench import BenchConfig, measure; "
    code += "print(json.dumps(measure(BenchConfig(**json.loads(sys.argv[1])))))"
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(dataclasses.asdict(cfg))], capture_output=True, text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UserError(f"the {cfg.model} benchmark failed: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_bench(cfg: BenchConfig, vs_peer: bool = False, isolate: bool = True) -> list[dict]:
    """Our model (and the peer at the same sizes with vs_peer); ratios are added to the last row."""
    go = run_isolated if isolate else measure
    results = [go(cfg)]
    if vs_peer:
        peer = go(dataclasses.replace(cfg, model="peer", amp=False, compile=False, checkpoint_steps=None,
                                      cuda_graph=False))
        ours = results[0]
        peer["speedup_vs_peer"] = ours["story_steps_per_s"] / peer["story_steps_per_s"]
        peer["memory_ratio_vs_peer"] = ours["peak_memory_bytes"] / max(peer["peak_memory_bytes"], 1)
        results.append(peer)
    return results
