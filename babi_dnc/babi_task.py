"""bAbI for the training loop: the recipes, how stories are served (BabiTaskConfig), the loss at the answer
slots, validation, and the task object `fit` trains on. babi_train.py runs `babi-dnc train` with them.

Validation error is computed by `evaluate_babi` with the bAbI metric of metrics.py, the same functions
that `babi-dnc eval` uses for the test error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import viz
from .augment import entity_classes, permute_entities
from .checkpoint import VOCAB, config_section, unwrap
from .config import JsonConfig, option
from .data import collate, iterate_batches, packed_columns, parse_task_spec, select_tasks, tasks_in
from .data.sampling import ROUND_BATCHES, iterate_round
from .errors import DataError, UserError
from .metrics import IGNORE_INDEX, is_failed, per_task_errors, question_results, summarize, task_errors
from .train import Task, TrainConfig, to_device

TRAIN_PRESETS: dict[str, TrainConfig] = {
    # The paper: RMSProp, lr 1e-4, momentum 0.9 (the batch size is ours).
    "paper": TrainConfig(optimizer="rmsprop", lr=1e-4, momentum=0.9, batch_size=16, max_steps=500_000,
                         eval_every=2000, log_every=50),
    # A CPU recipe (one thread: the fastest on a shared 2-core machine); 15 minutes unless told otherwise;
    # entity permutation, so that 1,800 stories a task cannot simply be memorised (see augment.py); the
    # DNC's time step compiled (faster on a CPU after a compile at the start; BENCHMARKS.md).
    "small": TrainConfig(optimizer="adam", lr=3e-3, warmup_steps=300, batch_size=32, max_steps=20_000,
                         max_minutes=15.0, eval_every=100, log_every=10, clip_grad_norm=10.0, threads=1,
                         compile=True),
    # All tasks jointly on a CPU, one thread per run (a DNC and an LSTM side by side on two cores): the small
    # recipe with a cosine decay over 16,000 steps, capped at 150 minutes of training.
    "joint": TrainConfig(optimizer="adam", lr=3e-3, warmup_steps=300, lr_decay="cosine", batch_size=32,
                         max_steps=16_000, max_minutes=150.0, eval_every=500, log_every=50, clip_grad_norm=10.0,
                         threads=1, compile=True),
    "tiny": TrainConfig(optimizer="adam", lr=1e-2, batch_size=4, max_steps=20, eval_every=10, log_every=1,
                        eval_batch_size=16, threads=1),
}


@dataclass
class BabiTaskConfig(JsonConfig):
    """How bAbI stories are served to the loop; saved as config.json["task"]."""

    augment: bool = option(False, "--augment")  # rename the entities of each training story at random (augment.py)
    # "uniform" (epochs over the stories), or "error": rounds drawn by each task's validation error (data/sampling.py)
    task_sampling: str = option("uniform", "--task-sampling")
    curriculum_tasks: str | None = option(None, "--curriculum-tasks")  # train on these tasks alone first ...
    curriculum_steps: int = option(0, "--curriculum-steps")  # ... for this many steps (0: no curriculum)
    valid_stories: int | None = option(None, "--eval-stories")  # validate on the first N stories of each task

    def check(self) -> None:
        """UserError naming the first setting out of range, as its `train` option."""
        if self.task_sampling not in TASK_SAMPLING:
            raise UserError(f"--task-sampling must be {' or '.join(TASK_SAMPLING)}, not {self.task_sampling!r}.")
        if self.curriculum_steps < 0:
            raise UserError(f"--curriculum-steps must be zero or more steps, not {self.curriculum_steps!r}.")
        if self.curriculum_steps > 0 and not self.curriculum_tasks:
            raise UserError("--curriculum-steps needs --curriculum-tasks: the tasks to train on first.")
        if self.valid_stories is not None and self.valid_stories < 1:
            raise UserError(f"--eval-stories must be at least 1, not {self.valid_stories!r}.")

    @classmethod
    def from_saved(cls, config: dict, run_dir: str | Path) -> BabiTaskConfig:
        """config.json's "task" section; a run saved before it had one kept these settings in "train" and "data"."""
        if "task" in config:
            return config_section(config, "task", cls, run_dir)
        return config_section({"task": {**config.get("data", {}), **config.get("train", {})}}, "task", cls, run_dir)

    def build(self, data, train: TrainConfig) -> BabiTask:
        """The BabiTask serving `data` under these settings and `train`'s batch sizes and seed."""
        first = parse_task_spec(self.curriculum_tasks) if self.curriculum_steps else None
        return BabiTask(data, train.batch_size, seed=train.seed, eval_batch_size=train.eval_batch_size,
                        valid_stories=self.valid_stories, augment=self.augment, sampling=self.task_sampling,
                        curriculum_tasks=first, curriculum_steps=self.curriculum_steps)


TASK_SAMPLING = ("uniform", "error")
# the recipes' serving: entity permutation where 1,800 stories a task could simply be memorised
TASK_PRESETS = {"paper": BabiTaskConfig(), "small": BabiTaskConfig(augment=True),
                "joint": BabiTaskConfig(augment=True), "tiny": BabiTaskConfig()}


def answer_loss(logits: Tensor, targets: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Cross-entropy at the answer steps only (targets != IGNORE_INDEX), averaged over answer words.

    logits [B, T, V], targets [B, T]. Returns (loss, {"tokens": answer words, "correct": right ones});
    no host sync.
    """
    V = logits.shape[-1]
    answer = targets != IGNORE_INDEX  # [B, T]
    tokens = answer.sum()
    total = F.cross_entropy(logits.reshape(-1, V).float(), targets.reshape(-1), ignore_index=IGNORE_INDEX,
                            reduction="sum")
    correct = ((logits.argmax(-1) == targets) & answer).sum()
    return total / tokens.clamp(min=1), {"tokens": tokens, "correct": correct}


def evaluate_babi(model: nn.Module, dataset, batch_size: int = 64, device=None) -> dict[str, float]:
    """Validation: the question error per task on `dataset` (a data split), by the bAbI metric (a
    question is right only if every answer word is; see metrics.py). Returns metrics.summarize's dict:
    {"error": mean of the task errors, "error_task_T": ..., "questions", "failed_tasks", "tasks"}."""
    device = device or next(model.parameters()).device
    tasks, correct = [], []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in iterate_batches(dataset, batch_size, shuffle=False, bucket=True):
            batch = to_device(batch, device)
            logits, _ = model(batch["ids"], mask=batch["mask"])
            r = question_results(logits, batch)
            tasks.append(r["task"])
            correct.append(r["correct"])
    model.train(was_training)
    if not tasks:
        return summarize({})
    return summarize(task_errors(torch.cat(tasks), torch.cat(correct)))


class BabiTask(Task):
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
        sampling: "uniform" (epochs over the training stories) or "error" (rounds of stories drawn by each
            task's latest validation error, data/sampling.py; an "epoch" is then a round).
        curriculum_tasks, curriculum_steps: the steps before `curriculum_steps` train on epochs over the
            stories of `curriculum_tasks` alone (task numbers; e.g. [1], which the later tasks build on);
            from then on, `sampling` over all the training stories, starting at epoch 0.
    State: (epoch, batches used in this epoch, whether in the curriculum); with "error", also the errors of
    the round under way and those of the latest validation.
    """

    unit = "stories"

    def __init__(self, data, batch_size: int = 16, seed: int = 0, eval_batch_size: int = 64, bucket: bool = True,
                 valid_stories: int | None = None, augment: bool = False, sampling: str = "uniform",
                 curriculum_tasks: list[int] | None = None, curriculum_steps: int = 0):
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
        self.sampling, self.round_batches = sampling, ROUND_BATCHES
        self.round_errors: dict[int, float] = {}  # the errors the round under way was drawn with
        self.latest_errors: dict[int, float] = {}  # those of the latest validation: the next round's
        self.curriculum_steps, self.in_curriculum = curriculum_steps, False
        self.curriculum = curriculum_split(data.train, curriculum_tasks) if curriculum_steps > 0 else None
        self.classes = None
        if augment:
            self.classes = entity_classes(data.train, data.vocab)

    def _epoch_batches(self) -> Iterator[dict]:
        if self.in_curriculum:
            return iterate_batches(self.curriculum, self.batch_size, shuffle=True, seed=self.seed,
                                   epoch=self.epoch, bucket=self.bucket)
        if self.sampling == "error":
            return iterate_round(packed_columns(self.data.train), self.round_errors, self.batch_size, self.seed,
                                 self.epoch, self.round_batches)
        return iterate_batches(
            self.data.train, self.batch_size, shuffle=True, seed=self.seed, epoch=self.epoch, bucket=self.bucket
        )

    def next_batch(self, step: int) -> dict[str, Tensor]:
        if (step < self.curriculum_steps) != self.in_curriculum:  # into or out of the curriculum
            self.in_curriculum = step < self.curriculum_steps
            self.epoch, self.index, self._iter = 0, 0, None
        if self._iter is None:  # (re)start the epoch and skip what was used (after a resume)
            self._iter = self._epoch_batches()
            for _ in range(self.index):
                next(self._iter)
        batch = next(self._iter, None)
        if batch is None:
            self.epoch, self.index = self.epoch + 1, 0
            self.round_errors = dict(self.latest_errors)
            self._iter = self._epoch_batches()
            batch = next(self._iter)
        self.index += 1
        if self.classes:
            seed = int(np.random.SeedSequence([self.seed, self.epoch, self.index]).generate_state(1)[0])
            batch = permute_entities(batch, self.classes, self.data.vocab.size + 1, torch.Generator().manual_seed(seed))
        return {k: batch[k] for k in ("ids", "mask", "targets")}

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        logits, _ = model(batch["ids"], mask=batch["mask"])
        return answer_loss(logits, batch["targets"])

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return evaluate_babi(model, self.valid, self.eval_batch_size)

    def on_evaluate(self, metrics: dict[str, float]) -> None:
        """The per-task errors of a validation (on every process), for the next round of "error" sampling."""
        self.latest_errors = per_task_errors(metrics)

    def state_dict(self) -> dict:
        state = {"epoch": self.epoch, "index": self.index, "seed": self.seed, "batch_size": self.batch_size,
                 "in_curriculum": self.in_curriculum}
        if self.sampling == "error":  # JSON-like: task numbers as strings
            state |= {"round_errors": {str(t): e for t, e in self.round_errors.items()},
                      "latest_errors": {str(t): e for t, e in self.latest_errors.items()}}
        return state

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self.in_curriculum = bool(state.get("in_curriculum", False))
        self.round_errors = {int(t): float(e) for t, e in state.get("round_errors", {}).items()}
        self.latest_errors = {int(t): float(e) for t, e in state.get("latest_errors", {}).items()}
        self._iter = None

    def progress_fields(self) -> dict[str, str]:
        if self.in_curriculum:
            return {"curriculum epoch": f"{self.epoch + self.index * self.batch_size / len(self.curriculum):.2f}"}
        if self.sampling == "error":
            return {"round": str(self.epoch)}
        epochs = self.epoch + self.index * self.batch_size / max(len(self.data.train), 1)
        return {"epoch": f"{epochs:.2f}"}

    def summary(self, metrics: dict[str, float]) -> str:
        per_task = per_task_errors(metrics)
        worst = sorted(per_task.items(), key=lambda kv: -kv[1])[:3]
        worst_text = ", ".join(f"{t}: {e:.1%}" for t, e in worst if is_failed(e))
        text = f"val error {metrics['error']:.2%}, failed {int(metrics.get('failed_tasks', 0))}/{len(per_task)}"
        return text + (f" (worst {worst_text})" if worst_text else "")

    def run_files(self) -> dict[str, Any]:
        return {VOCAB: self.data.vocab.to_dict()}

    def memory_image(self, model: nn.Module):
        """The write/read weightings and usage on the first validation story ([H, W, 3] uint8) or None."""
        batch = to_device(collate([self.valid[0]]), next(model.parameters()).device)
        if not unwrap(model).has_memory:
            return None
        _, _, trace = unwrap(model).trace(batch["ids"], mask=batch["mask"])
        return viz.memory_image(trace, sample=0, scale=2)


def curriculum_split(train, tasks: list[int] | None):
    """The training stories of `tasks` (a datasets.Dataset); DataError when some of them have none."""
    wanted = sorted(set(tasks or ()))
    subset = select_tasks(train, wanted)
    present = tasks_in(subset)
    missing = [str(t) for t in wanted if t not in present]
    if not wanted or missing:
        raise DataError(f"--curriculum-tasks must be tasks the run trains on (with training stories), "
                        f"not {', '.join(missing) or 'none given'}.")
    return subset


__all__ = ["TRAIN_PRESETS", "TASK_PRESETS", "BabiTaskConfig", "answer_loss", "evaluate_babi", "BabiTask",
           "curriculum_split"]
