"""Training the DNC on copy and repeat-copy through the shared loop (`babi_dnc.train.fit`).

    from copytasks.train import CopyConfig, train_copy
    summary = train_copy(CopyConfig.for_task("copy", out="runs/copy"))

`CopyTask` implements fit's Task protocol: batches drawn from a seeded torch.Generator at the current
curriculum level, sigmoid cross-entropy and bit errors on the recall steps, evaluation on a fixed set at
the full setting, and the curriculum advanced after each evaluation. The run directory is fit's (config,
metrics.jsonl, TensorBoard, checkpoints) plus PNG plots of the memory on one test sequence.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from babi_dnc import viz
from babi_dnc.checkpoint import load_for_inference, read_config
from babi_dnc.dnc import DNC
from babi_dnc.errors import UserError
from babi_dnc.run_folder import start_mode
from babi_dnc.train import Task, TrainConfig, fit, seed_everything

from .curriculum import Curriculum, CurriculumConfig
from .tasks import TASKS, CopyTaskConfig, bit_errors, recall_loss, sample_batch

EVAL_SEED_OFFSET = 1_000_003  # the evaluation sets' generators: seed + offset (+ level)


@dataclass
class CopyModelConfig:
    """The DNC for the copy tasks; saved as config.json["model"]."""

    controller: str = "ff"  # "ff" or "lstm"
    controller_size: int = 64
    controller_layers: int = 1
    memory_slots: int = 16  # N (>= the longest pattern)
    word_size: int = 16  # W
    read_heads: int = 1  # R
    clip_activation_grad: float | None = 10.0


def build_copy_model(model: CopyModelConfig, task: CopyTaskConfig) -> DNC:
    """A DNC with the task's input and output widths."""
    if model.controller not in ("ff", "lstm"):
        raise UserError(f"Unknown controller {model.controller!r}: use ff or lstm.")
    return DNC(
        task.input_size, task.output_size, controller=model.controller, controller_size=model.controller_size,
        controller_layers=model.controller_layers, memory_slots=model.memory_slots, word_size=model.word_size,
        read_heads=model.read_heads, clip_activation_grad=model.clip_activation_grad,
    )


def _copy_train_defaults() -> TrainConfig:
    return TrainConfig(optimizer="adam", lr=1e-3, clip_grad_norm=10.0, batch_size=16, max_steps=2500,
                       eval_every=50, log_every=25, eval_batch_size=64, threads=1, device="cpu")


@dataclass
class CopyConfig:
    """Everything `train_copy` needs: the task, its curriculum, the model, the training and the output."""

    task: CopyTaskConfig = field(default_factory=CopyTaskConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    model: CopyModelConfig = field(default_factory=CopyModelConfig)
    train: TrainConfig = field(default_factory=_copy_train_defaults)
    out: str = "runs/copy"
    eval_size: int = 64  # sequences in each evaluation set
    stop_when_solved: int = 3  # fit stops early after this many error-free evaluations in a row (0: never)
    plots: bool = True  # PNG plots of the memory at the end

    @classmethod
    def for_task(cls, task: str = "copy", **overrides) -> CopyConfig:
        """Defaults that learn `task` on a laptop CPU in minutes.

        copy: patterns of 1..10 vectors of 6 bits; a feed-forward controller of 64 units (it has no
          memory of its own, so it must learn to use the DNC's); memory 16 x 16, one read head; Adam 1e-3,
          batch 16, 2500 steps (solved after about 1400 with seed 0).
        repeat-copy: patterns of 1..3 vectors of 6 bits repeated 1..3 times; an LSTM controller of 64 units
          (it has to count the repeats); memory 16 x 16, two read heads; Adam 1e-2 with a cosine decay
          to 1e-3 (the LSTM learns slowly at 1e-3 and is unsteady at a constant 1e-2), batch 32, 4000 steps.
        Both evaluate every 50 steps, which is also when the curriculum may advance.
        """
        if task not in TASKS:
            raise UserError(f"Unknown copy task {task!r}: use one of {', '.join(TASKS)}.")
        config = cls(out=f"runs/{task}")
        if task == "repeat-copy":
            config.task = CopyTaskConfig(task, bits=6, min_length=1, max_length=3, max_repeats=3)
            config.model = CopyModelConfig(controller="lstm", read_heads=2)
            config.train = dataclasses.replace(config.train, lr=1e-2, lr_decay="cosine", batch_size=32,
                                               max_steps=4000)
        else:
            config.task = CopyTaskConfig(task, bits=6, min_length=1, max_length=10)
        for key, value in overrides.items():
            setattr(config, key, value)
        return config

    def to_save(self) -> dict:
        """config.json: {"kind": "copy", "model", "data" (task + curriculum), "train"}."""
        data = dataclasses.asdict(self.task) | {"curriculum": dataclasses.asdict(self.curriculum),
                                                "eval_size": self.eval_size}
        return {"kind": "copy", "model": dataclasses.asdict(self.model), "data": data,
                "train": self.train.to_dict()}


class CopyTask(Task):
    """Copy / repeat-copy for `fit` (see the Task in babi_dnc/train/).

    Batches: `batch_size` sequences with lengths and repeats uniform up to the curriculum level, drawn
    from a torch.Generator seeded with `seed` (its state and the curriculum's are in state_dict).
    Evaluation: bit errors per sequence on a fixed set of `eval_size` sequences at the full setting
    (max length, max repeats) -> "error", and on a set at the current level -> "level_error", which
    feeds the curriculum.
    """

    unit = "sequences"

    def __init__(
        self, config: CopyTaskConfig, curriculum: CurriculumConfig | None = None, batch_size: int = 16,
        seed: int = 0, eval_size: int = 64, stop_when_solved: int = 0,
    ):
        self.config, self.batch_size, self.seed, self.eval_size = config, batch_size, seed, eval_size
        self.stop_when_solved = stop_when_solved
        self.solved_evals = 0  # evaluations in a row with no bit error at the full setting
        self.curriculum = Curriculum(curriculum or CurriculumConfig(), config.min_length, config.max_length,
                                     config.max_repeats)
        self.generator = torch.Generator().manual_seed(seed)
        self.target_set = self._eval_set(config.max_length, config.max_repeats, config.max_length,
                                         config.max_repeats, seed + EVAL_SEED_OFFSET)
        self._bits_ema: Tensor | None = None  # recent training bit errors per sequence (no host sync)

    def _eval_set(self, max_length, max_repeats, min_length, min_repeats, seed) -> dict[str, Tensor]:
        generator = torch.Generator().manual_seed(seed)
        return sample_batch(self.config, self.eval_size, max_length, max_repeats, generator,
                            min_length=min_length, min_repeats=min_repeats)

    def level_set(self) -> dict[str, Tensor]:
        """A fixed evaluation set at the current level (lengths and repeats uniform up to it)."""
        c = self.curriculum
        return self._eval_set(c.length, c.repeats, None, 1, self.seed + EVAL_SEED_OFFSET + 1 + c.index)

    # -- the Task protocol
    def next_batch(self, step: int) -> dict[str, Tensor]:
        c = self.curriculum
        return sample_batch(self.config, self.batch_size, c.length, c.repeats, self.generator)

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        logits, _ = model(batch["inputs"], mask=batch["mask"])  # [B, T, Y]
        logits = logits.float()
        loss = recall_loss(logits, batch["targets"], batch["loss_mask"])
        bits = bit_errors(logits.detach(), batch["targets"], batch["loss_mask"]).mean()
        self._bits_ema = bits if self._bits_ema is None else 0.9 * self._bits_ema + 0.1 * bits
        return loss, {"bit_errors": bits}

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        target = self.errors(model, self.target_set)
        level = self.errors(model, self.level_set())
        bits_per_sequence = self.target_set["loss_mask"].sum(1).float().mean().item() * self.config.output_size
        return {
            "error": target.mean().item(),  # bit errors per sequence at the full setting
            "bit_error_rate": target.mean().item() / bits_per_sequence,
            "perfect": (target == 0).float().mean().item(),  # share of sequences without an error
            "level_error": level.mean().item(),
            "level": float(self.curriculum.index + 1),
            "level_length": float(self.curriculum.length),
            "level_repeats": float(self.curriculum.repeats),
        }

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "curriculum": self.curriculum.state_dict(),
                "solved_evals": self.solved_evals}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"].cpu())
        self.curriculum.load_state_dict(state["curriculum"])
        self.solved_evals = int(state.get("solved_evals", 0))

    # -- optional hooks
    def on_evaluate(self, metrics: dict[str, float]) -> None:
        """Advance the curriculum when the recent level error is low; count the solved evaluations."""
        self.curriculum.update(metrics["level_error"])
        self.solved_evals = self.solved_evals + 1 if metrics["error"] == 0 else 0

    def should_stop(self, metrics: dict[str, float]) -> bool:
        """True once the full setting had no bit error in `stop_when_solved` evaluations in a row
        (0: never). For loops that support early stopping."""
        return 0 < self.stop_when_solved <= self.solved_evals

    def progress_fields(self) -> dict[str, str]:
        bits = "n/a" if self._bits_ema is None else f"{self._bits_ema.item():.2f}"
        return {"bits/seq": bits, "level": self.curriculum.describe()}

    def format_error(self, error: float) -> str:
        """The validation error for the progress: bit errors per sequence, not a share."""
        return f"{error:.3f} bit errors/seq"

    def summary(self, metrics: dict[str, float]) -> str:
        """The log line of an evaluation (the level is the one evaluated, before any advance)."""
        c, m = self.config, metrics
        level = f"{int(m['level'])}/{len(self.curriculum.levels)} (len {int(m['level_length'])}"
        level += f", rep {int(m['level_repeats'])})" if c.task == "repeat-copy" else ")"
        return (f"{m['error']:.3f} bit errors/seq at length {c.max_length}"
                + (f" x {c.max_repeats} repeats" if c.task == "repeat-copy" else "")
                + f" ({m['perfect']:.0%} perfect); {m['level_error']:.3f} at level {level}"
                + (" -> advance" if self.curriculum.index + 1 > m["level"] else ""))

    def memory_image(self, model: nn.Module) -> np.ndarray | None:
        """Write / read weightings and usage on the first evaluation sequence, for TensorBoard."""
        trace = self.trace(model, self.target_set, sample=0)[2]
        return viz.memory_image(trace, sample=0)

    # -- helpers
    def errors(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """Bit errors per sequence [B] of `model` on `batch`."""
        batch = _to(batch, _device(model))
        logits, _ = model(batch["inputs"], mask=batch["mask"])
        return bit_errors(logits.float(), batch["targets"], batch["loss_mask"])

    def trace(self, model: nn.Module, batch: dict[str, Tensor], sample: int = 0):
        """(batch row [1, T, ...], logits [1, T, Y], trace) for one sequence, without its padding."""
        row = {k: v[sample : sample + 1] for k, v in batch.items()}
        steps = int(row["mask"].sum())
        row = {k: v[:, :steps] if v.dim() > 1 else v for k, v in row.items()}
        logits, _, trace = model.trace(_to(row, _device(model))["inputs"])
        return row, logits.float().cpu(), trace


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _to(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


# ----------------------------------------------------------------------------------------------- plots


def step_tokens(length: int, repeats: int, task: CopyTaskConfig) -> list[str]:
    """Time-axis labels of one sequence: start, x1..xL, end (repeat-copy: repK), y1..yL K times, stop
    (repeat-copy)."""
    end = f"rep{repeats}" if task.end_flag else "end"
    recall = [f"y{i % length + 1}" for i in range(repeats * length)]
    return ["start", *(f"x{i + 1}" for i in range(length)), end, *recall, *(["stop"] if task.end_flag else [])]


def plot_sequence(row: dict[str, Tensor], outputs: Tensor, tokens: list[str], path=None, title=None):
    """Inputs, targets and outputs (recall steps) of one sequence, channels x time."""
    steps = len(tokens)
    recall = row["loss_mask"][0, :steps].float()  # [T]
    panels = [("input", row["inputs"][0, :steps]), ("target", row["targets"][0, :steps] * recall[:, None]),
              ("output", outputs[:steps] * recall[:, None])]
    fig = Figure(figsize=(max(6.0, 3.0 + 0.18 * steps), 5.0), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    for ax, (name, matrix) in zip(axes, panels, strict=True):
        ax.imshow(matrix.T.numpy(), aspect="auto", interpolation="nearest", cmap="gray_r", vmin=0, vmax=1)
        ax.set_ylabel(name, fontsize=8)
        ax.tick_params(labelsize=7)
    viz.time_axis(axes[-1], steps, tokens)
    if title:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def save_plots(model: nn.Module, task: CopyTask, out: Path, sample: int = 0) -> list[Path]:
    """memory.png (plot_memory) and sequence.png (inputs / targets / outputs) on test sequence `sample`
    of the full-setting evaluation set."""
    model.eval()
    with torch.no_grad():
        row, logits, trace = task.trace(model, task.target_set, sample)
    length, repeats = int(row["lengths"][0]), int(row["repeats"][0])
    tokens = step_tokens(length, repeats, task.config)
    errors = int(bit_errors(logits, row["targets"], row["loss_mask"])[0])
    outputs = torch.sigmoid(logits[0])  # [T, Y]
    title = f"{task.config.task}: length {length}, repeats {repeats}, {errors} bit errors"
    paths = [out / "memory.png", out / "sequence.png"]
    viz.plot_memory(trace, sample=0, tokens=tokens, path=paths[0], title=title)
    plot_sequence(row, outputs, tokens, path=paths[1], title=title)
    return paths


# ------------------------------------------------------------------------------------------ entry point


def load_copy_run(run_dir: str | Path, tag: str = "best", device: str | torch.device = "cpu"):
    """The DNC of a copy run with checkpoint `tag` loaded, in eval mode, and the run's config.json."""
    config = read_config(run_dir)
    data = {k: v for k, v in config["data"].items() if k not in ("curriculum", "eval_size")}
    model = build_copy_model(CopyModelConfig(**config["model"]), CopyTaskConfig(**data))
    load_for_inference(run_dir, model, tag, device)
    return model, config


def train_copy(config: CopyConfig, resume: bool = False, restart: bool = False) -> dict:
    """Train a DNC on config.task with `fit`, then plot its memory; returns fit's summary (+ "plots").
    A folder that holds a run is refused unless resume or restart (babi_dnc/run_folder.py)."""
    out = Path(config.out)
    start_mode(out, resume, restart)  # a refusal before the model is built
    seed_everything(config.train.seed)
    model = build_copy_model(config.model, config.task)
    task = CopyTask(config.task, config.curriculum, config.train.batch_size, config.train.seed, config.eval_size,
                    config.stop_when_solved)
    summary = fit(model, task, config.train, out, config.to_save(), resume=resume, restart=restart)
    summary["curriculum"] = task.curriculum.describe()
    if config.plots:
        best, _ = load_copy_run(out, "best")
        summary["plots"] = [str(p) for p in save_plots(best, task, out)]
    return summary
