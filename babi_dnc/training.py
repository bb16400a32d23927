"""The training loop shared by bAbI and the copy tasks, and the bAbI task for it.

    from babi_dnc.training import TrainConfig, Task, fit, BabiTask
    summary = fit(model, task, TrainConfig(...), run_dir, config_to_save={"kind": "babi", ...}, vocab=vocab)

The Task protocol
-----------------
`fit` knows nothing about bAbI or copying; a task object supplies the data, the loss and the metric:

    next_batch(step: int) -> dict[str, Tensor]
        The global batch for `step`. Deterministic: the task owns its RNG (e.g. a torch.Generator or a
        seed + epoch), so that the same state yields the same batches. Tensors are batch-first: under DDP
        every tensor with a batch dimension is split along dim 0 and each process gets its own rows.
    loss(model, batch) -> (loss: Tensor scalar, stats: dict[str, Tensor])
        `batch` is on the training device. Return the mean loss over this batch's loss terms. No .item()
        (no host sync). If stats["tokens"] is the number of terms the loss averages over (e.g. answer
        words), DDP weights every process by it, so the update is exactly the one for the whole batch;
        stats["correct"] with "tokens" gives a logged accuracy. Other stats are logged as per-step means.
    evaluate(model) -> dict[str, float]
        Validation metrics; must contain "error" (lower is better; picks the "best" checkpoint). Called
        under torch.no_grad() and model.eval(), on the unwrapped model, on process 0 only. Must not use
        the global RNG (use a private generator) so that resuming is exact.
    state_dict() -> dict  /  load_state_dict(d)
        Everything needed to continue the batch stream exactly (RNG, epoch, curriculum level); only
        numbers, strings, lists, dicts and tensors (it is read back with torch.load(weights_only=True)).
    Optional:
    on_evaluate(metrics) -> None          after each evaluation, on every process (curriculum hook)
    should_stop(metrics) -> bool          after on_evaluate, on every process: True ends training early
                                          (stop_reason "solved"; the copy tasks once solved)
    progress_fields() -> dict[str, str]   shown in the progress line, e.g. {"epoch": "3.2"}
    summary(metrics) -> str               one line describing an evaluation, for the log
    memory_image(model) -> ndarray | None an [H, W, 3] uint8 picture of the memory for TensorBoard
    unit: str                             what a batch row is ("stories", "sequences") for the speed

`fit(model, task, train_config, run_dir, config_to_save, vocab=None, resume=False) -> dict`
    Trains for `train_config.max_steps` steps (a step is one batch, whether or not the update was taken),
    evaluates every `eval_every` steps (and at the end), and keeps RUN/checkpoints/best (lowest validation
    error) and RUN/checkpoints/latest (written at step 0, at every evaluation, every `checkpoint_every`
    steps, every `checkpoint_minutes` of training and at the end; see checkpoint.py for the layout). With
    resume=True it continues from RUN/checkpoints/latest (if there is one; else it starts afresh) with
    the saved optimiser, scheduler, RNG and task state: on CPU with a fixed seed the weights are
    bit-identical to those of an unbroken run. Returns a summary dict: run_dir, step, best_error,
    best_step, metrics (last evaluation), stopped (by a signal or the time limit), stop_reason,
    nonfinite (skipped updates), reloads, elapsed_s (training time, all sessions of the run).

Safety nets
-----------
- Non-finite loss or gradient norm: the update is skipped and logged ({"kind": "nonfinite"} in
  metrics.jsonl). After `nonfinite_patience` in a row, the model and optimiser are reloaded from the last
  good checkpoint and the learning rate is multiplied by `lr_backoff` ({"kind": "reload"}). A model with
  non-finite weights is never saved. One host sync per step reads the loss and the gradient norm.
- SIGINT / SIGTERM: the current step finishes, "latest" is saved and fit returns (stopped=True). A
  second Ctrl-C interrupts at once.
- Gradient clipping: the paper's clip of the controller activations' gradients to [-10, 10] is a model
  option (ModelConfig.clip_activation_grad); `clip_grad_norm` adds global norm clipping.

Devices and several processes
-----------------------------
`device` "auto" picks CUDA when present. `amp` runs the forward pass under bfloat16 autocast on CUDA (the
memory itself stays in float32). `compile` compiles the DNC's time step with torch.compile
(models.compile_model). Under torchrun, every process trains on its share of each global batch with
DistributedDataParallel (NCCL on CUDA, gloo on CPU); process 0 alone evaluates and writes checkpoints and
logs:

    torchrun --standalone --nproc_per_node=4 -m app train --preset paper --batch-size 64 --out runs/p
    # several machines: torchrun --nnodes=2 --node_rank=0|1 --nproc_per_node=8 \\
    #     --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 -m app train ...

`--batch-size` is the global batch; each of the W processes gets batch_size / W stories of it, so the
result does not depend on W (up to floating-point rounding).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import (
    has_checkpoint,
    load_checkpoint,
    read_config,
    read_vocab,
    save_checkpoint,
    unwrap,
    write_run_files,
)
from .config import JsonConfig
from .errors import DataError, UserError
from .malloc import retain_freed_memory
from .models import ModelConfig, build_model, compile_model, count_parameters

IGNORE = -100  # target id of steps without a loss (data.collate uses it too)


# ---------------------------------------------------------------------------------------------- config


@dataclass
class TrainConfig(JsonConfig):
    """How to train; saved as config.json["train"]."""

    optimizer: str = "rmsprop"  # "rmsprop" (the paper), "adam" or "sgd"
    lr: float = 1e-4
    momentum: float = 0.9  # RMSProp and SGD momentum
    rmsprop_alpha: float = 0.9  # RMSProp decay of the squared-gradient average (TensorFlow's default)
    eps: float | None = None  # None: 1e-10 for RMSProp (DeepMind's dnc), 1e-8 for Adam
    weight_decay: float = 0.0
    warmup_steps: int = 0  # linear warm-up of the learning rate
    lr_decay: str = "constant"  # "constant" or "cosine" (to 10% at max_steps)
    clip_grad_norm: float | None = None  # global gradient-norm clipping (None: off)
    batch_size: int = 16  # the global batch (all processes together)
    max_steps: int = 100_000
    max_minutes: float | None = None  # stop (and save) once the run has trained this long (all sessions)
    eval_every: int = 1000
    log_every: int = 50
    checkpoint_every: int = 0  # save "latest" every N steps as well (0: at every evaluation only)
    checkpoint_minutes: float | None = 10.0  # ... and after this much training time since the last save
    image_every: int = 5  # a memory image to TensorBoard every N evaluations (0: never)
    eval_batch_size: int = 64
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda" or "cuda:N"
    amp: bool = False  # bfloat16 autocast on CUDA
    compile: bool = False  # torch.compile the DNC's time step (about 2x faster on a CPU; ~30 s to compile)
    threads: int | None = None  # torch.set_num_threads (1 is fastest on a busy CPU)
    nonfinite_patience: int = 10  # non-finite steps in a row before reloading the last checkpoint
    lr_backoff: float = 0.5  # learning-rate factor after such a reload
    augment: bool = False  # bAbI: rename the entities of each training story at random (see augment.py)
    progress: bool = True  # rich progress bar on a terminal
    tensorboard: bool = True


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # The paper: RMSProp, lr 1e-4, momentum 0.9 (the batch size is ours).
    "paper": TrainConfig(optimizer="rmsprop", lr=1e-4, momentum=0.9, batch_size=16, max_steps=500_000,
                         eval_every=2000, log_every=50),
    # A CPU recipe (one thread: the fastest on a shared 2-core machine); 15 minutes unless told otherwise;
    # entity permutation, so that 1,800 stories a task cannot simply be memorised (see augment.py); the
    # DNC's time step compiled (about 2x faster on a CPU, ~30 s to compile).
    "small": TrainConfig(optimizer="adam", lr=3e-3, warmup_steps=300, batch_size=32, max_steps=20_000,
                         max_minutes=15.0, eval_every=100, log_every=10, clip_grad_norm=10.0, threads=1,
                         augment=True, compile=True),
    # All tasks jointly on a CPU, one thread per run (a DNC and an LSTM side by side on two cores): the small
    # recipe with a cosine decay over 16,000 steps, capped at 125 minutes of training.
    "joint": TrainConfig(optimizer="adam", lr=3e-3, warmup_steps=300, lr_decay="cosine", batch_size=32,
                         max_steps=16_000, max_minutes=125.0, eval_every=500, log_every=50, clip_grad_norm=10.0,
                         threads=1, augment=True, compile=True),
    "tiny": TrainConfig(optimizer="adam", lr=1e-2, batch_size=4, max_steps=20, eval_every=10, log_every=1,
                        eval_batch_size=16, threads=1),
}  # fmt: skip


@dataclass
class DataConfig(JsonConfig):
    """Which bAbI data to train on; saved as config.json["data"]."""

    set_name: str = "en-10k"  # "en-10k" or "en"
    tasks: str = "all"  # "all" or a list such as "1,2,5-7"
    data_dir: str | None = None  # None: env BABI_DNC_DATA, else the Hugging Face Hub
    valid_fraction: float = 0.1
    seed: int = 0  # the validation split; the same for every training seed
    valid_stories: int | None = None  # validate on the first N validation stories of each task (None: all)


# --------------------------------------------------------------------------------------- the protocol


@runtime_checkable
class Task(Protocol):
    """What `fit` trains on (see the module docstring)."""

    def next_batch(self, step: int) -> dict[str, Tensor]: ...

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]: ...

    def evaluate(self, model: nn.Module) -> dict[str, float]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


# ------------------------------------------------------------------------------ RNG, devices, processes


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every global RNG state, in types torch.load(weights_only=True) reads back."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` returned."""
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all([s.cpu() for s in states])


@dataclass
class DistEnv:
    """This process's place among torchrun's processes (world_size 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistEnv:
    """Join torchrun's process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU); idempotent.

    A process group the caller already initialised (e.g. a test with torch.multiprocessing) is used as is.
    """
    if dist.is_available() and dist.is_initialized():
        return DistEnv(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    use_cuda = device != "cpu" and torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistEnv(dist.get_rank(), dist.get_world_size(), local_rank)


def resolve_device(device: str, env: DistEnv | None = None) -> torch.device:
    """'auto' -> CUDA if available else CPU; under DDP on CUDA, this process's GPU."""
    env = env or DistEnv()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu or auto.")
        if device == "cuda":
            device = f"cuda:{env.local_rank if env.active else torch.cuda.current_device()}"
    elif device != "cpu":
        raise UserError(f"unknown device {device!r}: use auto, cpu or cuda.")
    return torch.device(device)


def shard_batch(batch: dict[str, Any], env: DistEnv) -> dict[str, Any]:
    """This process's rows of the global batch: contiguous chunk `rank` of `world_size` along dim 0."""
    if not env.active:
        return batch
    return {
        k: torch.tensor_split(v, env.world_size, dim=0)[env.rank] if isinstance(v, Tensor) and v.dim() else v
        for k, v in batch.items()
    }


def batch_rows(batch: dict[str, Any]) -> int:
    """Rows (stories, sequences) in a batch: the first dimension of its first batched tensor."""
    return next((v.shape[0] for v in batch.values() if isinstance(v, Tensor) and v.dim()), 0)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}


# ------------------------------------------------------------------------------- optimiser, schedule


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """RMSProp (the paper), Adam or SGD as `config` says."""
    params = [p for p in params if p.requires_grad]
    if config.optimizer == "rmsprop":
        eps = 1e-10 if config.eps is None else config.eps
        return torch.optim.RMSprop(
            params, lr=config.lr, alpha=config.rmsprop_alpha, eps=eps, momentum=config.momentum,
            weight_decay=config.weight_decay,
        )  # fmt: skip
    if config.optimizer == "adam":
        eps = 1e-8 if config.eps is None else config.eps
        return torch.optim.Adam(params, lr=config.lr, eps=eps, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise UserError(f"unknown optimizer {config.optimizer!r}: use rmsprop, adam or sgd.")


class LRSchedule:
    """lr(step) = lr * lr_scale * warm-up(step) * decay(step); lr_scale drops after non-finite reloads."""

    def __init__(self, config: TrainConfig):
        self.base, self.warmup, self.decay = config.lr, config.warmup_steps, config.lr_decay
        self.max_steps = max(1, config.max_steps)
        self.lr_scale = 1.0
        if self.decay not in ("constant", "cosine"):
            raise UserError(f"unknown lr_decay {self.decay!r}: use constant or cosine.")

    def lr(self, step: int) -> float:
        factor = min(1.0, (step + 1) / self.warmup) if self.warmup > 0 else 1.0
        if self.decay == "cosine":
            progress = min(1.0, step / self.max_steps)
            factor *= 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.base * self.lr_scale * factor

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        lr = self.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def state_dict(self) -> dict:
        return {"lr_scale": self.lr_scale}

    def load_state_dict(self, state: dict) -> None:
        self.lr_scale = float(state["lr_scale"])


# ------------------------------------------------------------------------------------------- logging


class MetricsLog:
    """RUN/metrics.jsonl (one JSON object per line) and TensorBoard scalars; a no-op off process 0."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool, resume_step: int | None):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.writer = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():  # drop what the interrupted run logged later
            lines = [line for line in self.path.read_text().splitlines() if line.strip()]
            kept = [line for line in lines if _step_of(line) <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))
        self.file = open(self.path, "a", buffering=1)  # noqa: SIM115 - closed in close()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                purge = resume_step + 1 if resume_step is not None else None
                self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=purge)
            except ImportError:  # pragma: no cover - tensorboard is a dependency
                self.writer = None

    def log(self, step: int, kind: str, **values) -> None:
        if not self.enabled:
            return
        row = {"step": step, "kind": kind, "time": round(time.time(), 3), **values}
        self.file.write(json.dumps(row, default=_json_default) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self.writer.add_scalar(f"{kind}/{key}", value, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        if self.enabled and self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            if self.writer is not None:
                self.writer.close()


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, TypeError, ValueError):
        return 1 << 62  # unreadable tail of a killed run: drop it


def _json_default(x):
    if isinstance(x, Tensor):
        return x.item() if x.numel() == 1 else x.tolist()
    if isinstance(x, (np.generic,)):
        return x.item()
    return str(x)


class ProgressDisplay:
    """A rich progress bar (epoch and step, loss, validation error, speed, ETA) on a terminal; plain
    lines on stderr otherwise; silent when disabled."""

    def __init__(self, enabled: bool, total: int, start: int, unit: str):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self.total, self.unit = total, unit
        self.fields = {"loss": "n/a", "val": "n/a", "speed": "", "extra": ""}
        self.progress = None
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold blue]train"),
                BarColumn(bar_width=30),
                MofNCompleteColumn(),
                TextColumn("{task.fields[extra]}"),
                TextColumn("loss [cyan]{task.fields[loss]}"),
                TextColumn("val [magenta]{task.fields[val]}"),
                TextColumn("{task.fields[speed]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task_id = self.progress.add_task("train", total=total, completed=start, **self.fields)
            self.progress.start()

    def update(self, step: int, **fields: str) -> None:
        self.fields.update(fields)
        if self.progress is not None:
            self.progress.update(self.task_id, completed=step, **self.fields)

    def line(self, text: str) -> None:
        """A message above the bar (or a plain line when there is no bar)."""
        if self.enabled:
            self.console.print(text, highlight=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


class StopFlag:
    """Set by SIGINT/SIGTERM (installed in the main thread only); a second SIGINT interrupts at once."""

    def __init__(self):
        self.requested = False
        self.reason = ""
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.reason = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


# ------------------------------------------------------------------------------------------------ fit


def _params_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _call_optional(task, name: str, *args, default=None):
    fn = getattr(task, name, None)
    return fn(*args) if callable(fn) else default


def fit(
    model: nn.Module,
    task: Task,
    train_config: TrainConfig,
    run_dir: str | Path,
    config_to_save: dict,
    vocab: Any = None,
    resume: bool = False,
) -> dict:
    """Train `model` on `task`; see the module docstring for the protocol, the files and the summary."""
    cfg = train_config
    run_dir = Path(run_dir)
    env = init_distributed(cfg.device)
    device = resolve_device(cfg.device, env)
    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)  # restored on return
    if device.type == "cpu":
        retain_freed_memory()  # no page faults through fresh link matrices every step (malloc.py)
    amp = cfg.amp and device.type == "cuda"
    raw = unwrap(model).to(device)
    raw.train()
    optimizer = make_optimizer(raw.parameters(), cfg)
    schedule = LRSchedule(cfg)
    counters = {"nonfinite": 0, "streak": 0, "reloads": 0, "evals": 0, "best_error": math.inf,
                "best_step": -1, "elapsed": 0.0}  # fmt: skip
    step, last_metrics = 0, {}

    resumed = resume and has_checkpoint(run_dir, "latest")
    if resumed:
        ckpt = load_checkpoint(run_dir, "latest", model=raw, map_location="cpu")
        trainer = ckpt.trainer
        optimizer.load_state_dict(trainer["optimizer"])
        schedule.load_state_dict(trainer["scheduler"])
        set_rng_state(trainer["rng"])
        task.load_state_dict(trainer["task"])
        counters.update(trainer["counters"])
        step, last_metrics = int(trainer["step"]), dict(ckpt.meta.get("metrics", {}))
    else:
        seed_everything(cfg.seed)
    if env.is_main:  # on resume too: config.json then holds the settings the run continues with
        write_run_files(run_dir, config_to_save, vocab)

    if cfg.compile:  # the DNC's time step, not the unrolled loop (see models.compile_model)
        compile_model(raw)
    forward_model: nn.Module = raw
    if env.active:
        from torch.nn.parallel import DistributedDataParallel

        forward_model = DistributedDataParallel(raw, device_ids=[device.index] if device.type == "cuda" else None)

    log = MetricsLog(run_dir, env.is_main, cfg.tensorboard, step if resumed else None)
    unit = getattr(task, "unit", "sequences")
    display = ProgressDisplay(cfg.progress and env.is_main, cfg.max_steps, step, unit)
    params = [p for p in raw.parameters() if p.requires_grad]

    def trainer_state() -> dict:
        return {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "scheduler": schedule.state_dict(),
            "rng": rng_state(),
            "task": task.state_dict(),
            "counters": dict(counters),
        }

    last_save = time.perf_counter()

    def save(tag: str) -> bool:
        """Save checkpoint `tag` on process 0 unless the weights are not finite; all processes wait."""
        nonlocal last_save
        ok = True
        if tag == "latest":
            last_save = time.perf_counter()
        if env.is_main:
            if _params_finite(raw):
                counters["elapsed"] = elapsed()
                meta = {"step": step, "metrics": last_metrics, "elapsed_s": counters["elapsed"]}
                save_checkpoint(run_dir, tag, raw, trainer_state(), meta)
            else:
                ok = False
                log.log(step, "refused_save", tag=tag, reason="non-finite weights")
                display.line(f"[red]step {step}: weights are not finite, checkpoint '{tag}' not saved")
        if env.active:
            dist.barrier()
        return ok

    def evaluate() -> dict:
        """Validation on process 0, metrics shared with every process; updates 'best'."""
        nonlocal last_metrics
        metrics: dict = {}
        if env.is_main:
            raw.eval()
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                metrics = {k: float(v) for k, v in task.evaluate(raw).items()}
            raw.train()
        if env.active:
            box = [metrics]
            dist.broadcast_object_list(box, src=0)
            metrics = box[0]
        if "error" not in metrics:
            raise ValueError("task.evaluate() must return a dict with an 'error' entry")
        last_metrics = metrics
        counters["evals"] += 1
        _call_optional(task, "on_evaluate", metrics)
        previous_best = counters["best_error"], counters["best_step"]
        is_best = metrics["error"] < counters["best_error"]  # False for NaN
        if is_best:
            counters["best_error"], counters["best_step"] = metrics["error"], step
        log.log(step, "eval", **metrics, best_error=counters["best_error"])
        summary = _call_optional(task, "summary", metrics, default=f"error {metrics['error']:.2%}")
        display.line(f"step {step}: {summary}" + ("  [green](best)" if is_best else ""))
        display.update(step, val=f"{metrics['error']:.2%} (best {counters['best_error']:.2%})")
        if env.is_main and cfg.image_every and counters["evals"] % cfg.image_every == 1 % cfg.image_every:
            raw.eval()
            with torch.no_grad():
                image = _call_optional(task, "memory_image", raw)
            raw.train()
            if image is not None:
                log.image("memory", image, step)
        if is_best and not save("best"):
            counters["best_error"], counters["best_step"] = previous_best
        return metrics

    t_start = time.perf_counter()
    elapsed_before = counters["elapsed"]

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t_start

    if env.is_main and not resumed:
        log.log(0, "start", parameters=count_parameters(raw), device=str(device), world_size=env.world_size)
    if not resumed:
        save("latest")  # the last good checkpoint for the non-finite guard, and a loadable run at once
    display.line(
        f"{'resuming' if resumed else 'training'} {run_dir} at step {step}/{cfg.max_steps} on {device}"
        + (f" x{env.world_size}" if env.active else "")
        + f" ({count_parameters(raw):,} parameters)"
    )

    window = {"loss": 0.0, "norm": 0.0, "steps": 0, "batches": 0, "rows": 0, "t": time.perf_counter()}
    stat_sums: dict[str, Tensor] = {}
    stopped, stop_reason = False, ""
    evaluated_at = saved_at = -1
    with StopFlag() as stop_flag:
        while step < cfg.max_steps:
            lr = schedule.apply(optimizer, step)
            global_batch = task.next_batch(step)
            rows = batch_rows(global_batch)
            batch = to_device(shard_batch(global_batch, env), device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss, stats = task.loss(forward_model, batch)
            loss = loss.float()
            want_stop = stop_flag.requested or (cfg.max_minutes is not None and elapsed() > 60 * cfg.max_minutes)
            since_save = time.perf_counter() - last_save
            want_save = cfg.checkpoint_minutes is not None and since_save > 60 * cfg.checkpoint_minutes
            backward_loss, loss_finite = loss, torch.isfinite(loss)
            if env.active:  # one collective: answer tokens, non-finite losses, stop and save requests
                tokens = stats.get("tokens")
                local = (tokens if tokens is not None else torch.ones((), device=device)).float().reshape(())
                flags = torch.tensor([float(want_stop), float(want_save)], device=device)
                shared = torch.cat([local.view(1), (~loss_finite).float().view(1), flags])
                dist.all_reduce(shared)
                backward_loss = loss * (env.world_size * local / shared[0].clamp(min=1.0))
                loss_finite = shared[1] == 0
            backward_loss.backward()
            max_norm = cfg.clip_grad_norm if cfg.clip_grad_norm else math.inf
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm) if params else torch.zeros(())
            checks = [loss.detach(), norm.float().to(loss.device), loss_finite.float()]
            if env.active:
                checks += [shared[2], shared[3]]
            values = torch.stack(checks).tolist()  # the one host sync per step
            loss_v, norm_v, finite_v = values[0], values[1], values[2]
            if env.active:  # every process stops at the same step
                want_stop, want_save = values[3] > 0, values[4] > 0
            else:
                want_stop = want_stop or stop_flag.requested
            finite = finite_v > 0 and math.isfinite(norm_v)
            if finite:
                optimizer.step()
                counters["streak"] = 0
                window["loss"] += loss_v
                window["norm"] += norm_v
                window["steps"] += 1
                for key, value in stats.items():
                    value = value.detach().float()
                    stat_sums[key] = stat_sums[key] + value if key in stat_sums else value
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window["rows"] += rows
            window["batches"] += 1
            if not finite:
                counters["nonfinite"] += 1
                counters["streak"] += 1
                log.log(step, "nonfinite", loss=loss_v, grad_norm=norm_v, count=counters["nonfinite"],
                        streak=counters["streak"])  # fmt: skip
                display.line(f"[yellow]step {step}: non-finite loss or gradient, update skipped "
                             f"({counters['streak']} in a row, {counters['nonfinite']} in all)")  # fmt: skip
                if counters["streak"] >= cfg.nonfinite_patience:
                    ckpt = load_checkpoint(run_dir, "latest", model=raw, map_location="cpu")
                    optimizer.load_state_dict(ckpt.trainer["optimizer"])
                    schedule.lr_scale *= cfg.lr_backoff
                    counters["streak"] = 0
                    counters["reloads"] += 1
                    log.log(step, "reload", from_step=ckpt.step, lr_scale=schedule.lr_scale)
                    display.line(f"[yellow]step {step}: reloaded the checkpoint of step {ckpt.step}, "
                                 f"learning rate x{schedule.lr_scale:g}")  # fmt: skip

            if step % cfg.log_every == 0 or step == cfg.max_steps:
                now = time.perf_counter()
                speed = window["rows"] / max(now - window["t"], 1e-9)
                n = max(window["steps"], 1)
                values = {"loss": window["loss"] / n, "grad_norm": window["norm"] / n, "lr": lr,
                          f"{unit}_per_s": speed}  # fmt: skip
                sums = {k: v.item() for k, v in stat_sums.items()}
                if "correct" in sums and sums.get("tokens"):
                    values["accuracy"] = sums["correct"] / sums["tokens"]
                values.update({k: v / n for k, v in sums.items() if k not in ("correct", "tokens")})
                log.log(step, "train", **values, nonfinite=counters["nonfinite"], elapsed_s=round(elapsed(), 2))
                fields = _call_optional(task, "progress_fields", default={}) or {}
                display.update(
                    step, loss=f"{values['loss']:.4f}" if window["steps"] else "n/a",
                    speed=f"{speed:.1f} {unit}/s", extra=" ".join(f"{k} {v}" for k, v in fields.items()),
                )  # fmt: skip
                if not display.live and display.enabled:
                    eta = (cfg.max_steps - step) * (now - window["t"]) / max(window["batches"], 1)
                    display.line(f"step {step}/{cfg.max_steps} loss {values['loss']:.4f} {speed:.1f} {unit}/s "
                                 f"val {display.fields['val']} ETA {eta / 60:.1f} min")  # fmt: skip
                window = {"loss": 0.0, "norm": 0.0, "steps": 0, "batches": 0, "rows": 0, "t": now}
                stat_sums = {}
            elif display.live:  # the running figures of the current logging window
                speed = window["rows"] / max(time.perf_counter() - window["t"], 1e-9)
                fields = _call_optional(task, "progress_fields", default={}) or {}
                loss_text = f"{window['loss'] / window['steps']:.4f}" if window["steps"] else display.fields["loss"]
                display.update(step, loss=loss_text, speed=f"{speed:.1f} {unit}/s",
                               extra=" ".join(f"{k} {v}" for k, v in fields.items()))  # fmt: skip

            t_pause = time.perf_counter()
            solved = False
            if cfg.eval_every and step % cfg.eval_every == 0:
                solved = bool(_call_optional(task, "should_stop", evaluate(), default=False))
                evaluated_at = step
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or evaluated_at == step or want_save:
                if save("latest"):
                    saved_at = step
            window["t"] += time.perf_counter() - t_pause  # the speed counts training time only
            if want_stop:
                stopped = True
                stop_reason = stop_flag.reason or "time limit"
                break
            if solved:  # an early stop the task asked for: the run is complete, not interrupted
                stop_reason = "solved"
                log.log(step, "solved")
                display.line(f"step {step}: solved, stopping early")
                break

        if saved_at != step:
            save("latest")  # before the final evaluation, so the saved state is that of an unbroken run
        if evaluated_at != step and not stop_flag.requested:
            evaluate()
    counters["elapsed"] = elapsed()
    if stopped:
        log.log(step, "stopped", reason=stop_reason)
        display.line(f"stopped at step {step} ({stop_reason}); resume with --resume")
    display.close()
    log.close()
    torch.set_num_threads(threads_before)
    return {
        "run_dir": str(run_dir),
        "step": step,
        "best_error": counters["best_error"],
        "best_step": counters["best_step"],
        "metrics": last_metrics,
        "stopped": stopped,
        "stop_reason": stop_reason,
        "nonfinite": counters["nonfinite"],
        "reloads": counters["reloads"],
        "elapsed_s": counters["elapsed"],
    }


# ----------------------------------------------------------------------------------------- bAbI task


def answer_loss(logits: Tensor, targets: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Cross-entropy at the answer steps only (targets != -100), averaged over answer words.

    logits [B, T, V], targets [B, T]. Returns (loss, {"tokens": answer words, "correct": right ones});
    no host sync.
    """
    V = logits.shape[-1]
    answer = targets != IGNORE  # [B, T]
    tokens = answer.sum()
    total = F.cross_entropy(logits.reshape(-1, V).float(), targets.reshape(-1), ignore_index=IGNORE, reduction="sum")
    correct = ((logits.argmax(-1) == targets) & answer).sum()
    return total / tokens.clamp(min=1), {"tokens": tokens, "correct": correct}


def question_results(logits: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per question of a batch: is every answer word right? (One row per question, CPU tensors.)

    Uses batch["targets"] [B, T], batch["question"] [B, T] (question index at answer steps, -1 elsewhere),
    batch["task"] [B] and batch["story"] [B]. Returns {"task", "story", "question", "correct"}, each [Q].
    """
    targets, question = batch["targets"], batch["question"]
    answer = question >= 0  # [B, T]
    B = targets.shape[0]
    wrong_word = (logits.argmax(-1) != targets) & answer  # [B, T]
    Q = int(question.max().item()) + 1 if answer.any() else 0
    index = question.clamp(min=0)
    wrong = torch.zeros(B, Q, dtype=torch.long, device=targets.device).scatter_add_(1, index, wrong_word.long())
    words = torch.zeros(B, Q, dtype=torch.long, device=targets.device).scatter_add_(1, index, answer.long())
    exists = words > 0  # [B, Q]
    rows = torch.arange(B, device=targets.device).unsqueeze(1).expand(B, Q)
    qs = torch.arange(Q, device=targets.device).unsqueeze(0).expand(B, Q)
    return {
        "task": batch["task"].unsqueeze(1).expand(B, Q)[exists].cpu(),
        "story": batch["story"].unsqueeze(1).expand(B, Q)[exists].cpu(),
        "question": qs[exists].cpu(),
        "correct": (wrong == 0)[exists].cpu(),
        "row": rows[exists].cpu(),
    }


def evaluate_babi(model: nn.Module, dataset, batch_size: int = 64, device=None) -> dict[str, float]:
    """Question error per task on `dataset` (a data.py split): a question is right only if every answer
    word is. Returns {"error": mean of the task errors, "error_task_T": ..., "questions": n,
    "failed_tasks": tasks above 5% error, "tasks": number of tasks}."""
    from .data import iterate_batches

    device = device or next(model.parameters()).device
    wrong: dict[int, int] = {}
    total: dict[int, int] = {}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in iterate_batches(dataset, batch_size, shuffle=False, bucket=True):
            batch = to_device(batch, device)
            logits, _ = model(batch["ids"], mask=batch["mask"])
            r = question_results(logits, batch)
            for t, ok in zip(r["task"].tolist(), r["correct"].tolist(), strict=True):
                total[t] = total.get(t, 0) + 1
                wrong[t] = wrong.get(t, 0) + (not ok)
    model.train(was_training)
    errors = {t: wrong[t] / total[t] for t in sorted(total)}
    metrics = {f"error_task_{t}": e for t, e in errors.items()}
    metrics["error"] = float(np.mean(list(errors.values()))) if errors else math.nan
    metrics["questions"] = float(sum(total.values()))
    metrics["failed_tasks"] = float(sum(e > 0.05 for e in errors.values()))
    metrics["tasks"] = float(len(errors))
    return metrics


class BabiTask:
    """bAbI for `fit`: bucketed, padded batches of stories; loss at the answer steps; validation error.

    Args:
        data: a `data.BabiData` (train / valid / test splits and the vocabulary).
        batch_size: stories per (global) batch.
        seed: shuffling seed; epoch e is shuffled with (seed, e), so the stream is reproducible.
        eval_batch_size: stories per validation batch.
        bucket: batch stories of similar length together (less padding).
        valid_stories: validate on only the first N validation stories of each task (None: all of them);
            a quicker, noisier validation for slow machines.
        augment: rename the entities of every training batch's stories at random (augment.py); the
            renaming of batch (epoch, index) depends only on (seed, epoch, index), so resuming is exact.
    State: (epoch, batches used in this epoch).
    """

    unit = "stories"

    def __init__(self, data, batch_size: int = 16, seed: int = 0, eval_batch_size: int = 64, bucket: bool = True,
                 valid_stories: int | None = None, augment: bool = False):  # fmt: skip
        if len(data.train) == 0:
            raise DataError("the training split has no stories: choose tasks whose training files exist.")
        if len(data.valid) == 0:
            raise DataError("the validation split is empty: use more training stories or a larger valid fraction.")
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.eval_batch_size, self.bucket = eval_batch_size, bucket
        self.valid = data.valid
        if valid_stories is not None:
            tasks = np.asarray(data.valid["task"])
            rank = np.zeros(len(tasks), dtype=np.int64)  # position of each story within its task
            for t in np.unique(tasks):
                rank[tasks == t] = np.arange(int((tasks == t).sum()))
            self.valid = data.valid.select(np.flatnonzero(rank < valid_stories))
        self.epoch, self.index = 0, 0
        self._iter: Iterator | None = None
        self.classes = None
        if augment:
            from .augment import entity_classes

            self.classes = entity_classes(data.train, data.vocab)

    def _epoch_batches(self) -> Iterator[dict]:
        from .data import iterate_batches

        return iterate_batches(
            self.data.train, self.batch_size, shuffle=True, seed=self.seed, epoch=self.epoch, bucket=self.bucket
        )

    def next_batch(self, step: int) -> dict[str, Tensor]:
        if self._iter is None:  # (re)start the epoch and skip what was used (after a resume)
            self._iter = self._epoch_batches()
            for _ in range(self.index):
                next(self._iter)
        batch = next(self._iter, None)
        if batch is None:
            self.epoch, self.index = self.epoch + 1, 0
            self._iter = self._epoch_batches()
            batch = next(self._iter)
        self.index += 1
        if self.classes:
            from .augment import permute_entities

            seed = int(np.random.SeedSequence([self.seed, self.epoch, self.index]).generate_state(1)[0])
            batch = permute_entities(batch, self.classes, self.data.vocab.size + 1, torch.Generator().manual_seed(seed))
        return {k: batch[k] for k in ("ids", "mask", "targets")}

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        logits, _ = model(batch["ids"], mask=batch["mask"])
        return answer_loss(logits, batch["targets"])

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return evaluate_babi(model, self.valid, self.eval_batch_size)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self._iter = None

    def progress_fields(self) -> dict[str, str]:
        epochs = self.epoch + self.index * self.batch_size / max(len(self.data.train), 1)
        return {"epoch": f"{epochs:.2f}"}

    def summary(self, metrics: dict[str, float]) -> str:
        per_task = {int(k.rsplit("_", 1)[1]): v for k, v in metrics.items() if k.startswith("error_task_")}
        worst = sorted(per_task.items(), key=lambda kv: -kv[1])[:3]
        worst_text = ", ".join(f"{t}: {e:.1%}" for t, e in worst if e > 0.05)
        text = f"val error {metrics['error']:.2%}, failed {int(metrics.get('failed_tasks', 0))}/{len(per_task)}"
        return text + (f" (worst {worst_text})" if worst_text else "")

    def memory_image(self, model: nn.Module):
        """The write/read weightings and usage on the first validation story ([H, W, 3] uint8) or None."""
        from .data import collate

        batch = to_device(collate([self.valid[0]]), next(model.parameters()).device)
        out = model(batch["ids"], mask=batch["mask"], trace=True)
        if len(out) < 3 or not out[2]:
            return None
        from . import viz

        return viz.memory_image(out[2], sample=0, scale=2)


# ------------------------------------------------------------------------------------- bAbI runs (CLI)


def run_config(model_config: ModelConfig, data_config: DataConfig, train_config: TrainConfig) -> dict:
    """What fit writes to config.json for a bAbI run."""
    return {"kind": "babi", "model": model_config.to_dict(), "data": data_config.to_dict(),
            "train": train_config.to_dict()}  # fmt: skip


def _is_nonempty(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def train_babi(
    model_config: ModelConfig,
    data_config: DataConfig,
    train_config: TrainConfig,
    out: str | Path,
    seeds: int = 1,
    resume: bool = False,
    train_overrides: dict | None = None,
) -> list[dict]:
    """Train `seeds` runs (RUN, or RUN/seed-N with seed = train_config.seed + N when seeds > 1).

    With resume=True, a run that has a config.json continues with its saved model, data and training
    configs (train_overrides, e.g. {"max_steps": ...}, replace saved training fields); a run without one
    starts fresh. Without resume, an existing non-empty `out` is an error. Returns fit's summaries.
    """
    from .data import load_babi

    out = Path(out)
    env = init_distributed(train_config.device)
    if seeds < 1:
        raise UserError("--seeds must be at least 1.")
    if not resume and _is_nonempty(out):
        raise UserError(f"{out} already holds a run: pass --resume to continue it or choose another --out.")
    if env.active:
        dist.barrier()  # every process checked `out` before process 0 writes to it
    runs = [out] if seeds == 1 else [out / f"seed-{n}" for n in range(seeds)]

    plans = []
    for n, run_dir in enumerate(runs):
        mc, dc, tc = model_config, data_config, dataclasses.replace(train_config, seed=train_config.seed + n)
        if resume and (run_dir / "config.json").exists():
            saved = read_config(run_dir)
            mc = ModelConfig.from_dict(saved["model"])
            dc = DataConfig.from_dict(saved["data"])
            tc = dataclasses.replace(TrainConfig.from_dict(saved["train"]), **(train_overrides or {}))
        plans.append((run_dir, mc, dc, tc))

    data_cache: dict[str, Any] = {}
    summaries = []
    for run_dir, mc, dc, tc in plans:
        saved_vocab = read_vocab(run_dir) if resume and (run_dir / "vocab.json").exists() else None
        key = json.dumps(dc.to_dict(), sort_keys=True)
        if key not in data_cache:
            if env.active and not env.is_main:
                dist.barrier()  # process 0 fills the dataset cache first
            data_cache[key] = load_babi(
                set_name=dc.set_name, tasks=dc.tasks, data_dir=dc.data_dir,
                valid_fraction=dc.valid_fraction, seed=dc.seed, vocab=saved_vocab,
            )  # fmt: skip
            if env.active and env.is_main:
                dist.barrier()
        data = data_cache[key]
        seed_everything(tc.seed)
        model = build_model(mc, data.vocab.size)
        task = BabiTask(data, tc.batch_size, seed=tc.seed, eval_batch_size=tc.eval_batch_size,
                        valid_stories=dc.valid_stories, augment=tc.augment)  # fmt: skip
        summary = fit(model, task, tc, run_dir, run_config(mc, dc, tc), vocab=data.vocab, resume=resume)
        summaries.append(summary)
        if summary["stopped"]:
            break
    return summaries


__all__ = [
    "TrainConfig", "DataConfig", "TRAIN_PRESETS", "Task", "fit", "BabiTask", "answer_loss", "question_results",
    "evaluate_babi", "train_babi", "run_config", "seed_everything", "init_distributed", "resolve_device",
    "shard_batch", "LRSchedule", "make_optimizer",
]  # fmt: skip
