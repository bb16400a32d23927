"""bAbI for the training loop: the recipes, the data settings, the loss at the answer slots, validation,
the task object `fit` trains on, and the orchestration of `babi-dnc train` (seeds, resume).

    summaries = train_babi(models.preset("small"), DataConfig(tasks="1"), TRAIN_PRESETS["small"], "runs/dnc")

Validation error is computed by `evaluate_babi` with the bAbI metric of metrics.py, the same functions
that `babi-dnc eval` uses for the test error.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from . import viz
from .augment import entity_classes, permute_entities
from .checkpoint import read_config
from .config import JsonConfig
from .data import collate, iterate_batches, load_babi
from .errors import DataError, UserError
from .metrics import IGNORE_INDEX, is_failed, question_results, summarize, task_errors
from .models import ModelConfig, build_model
from .runs import read_vocab
from .train import TrainConfig, fit, init_distributed, seed_everything, to_device

TRAIN_PRESETS: dict[str, TrainConfig] = {
    # The paper: RMSProp, lr 1e-4, momentum 0.9 (the batch size is ours).
    "paper": TrainConfig(optimizer="rmsprop", lr=1e-4, momentum=0.9, batch_size=16, max_steps=500_000,
                         eval_every=2000, log_every=50),
    # A CPU recipe (one thread: the fastest on a shared 2-core machine); 15 minutes unless told otherwise;
    # entity permutation, so that 1,800 stories a task cannot simply be memorised (see augment.py); the
    # DNC's time step compiled (faster on a CPU after a compile at the start; BENCHMARKS.md).
    "small": TrainConfig(optimizer="adam", lr=3e-3, warmup_steps=300, batch_size=32, max_steps=20_000,
                         max_minutes=15.0, eval_every=100, log_every=10, clip_grad_norm=10.0, threads=1,
                         augment=True, compile=True),
    # All tasks jointly on a CPU, one thread per run (a DNC and an LSTM side by side on two cores): the small
    # recipe with a cosine decay over 16,000 steps, capped at 150 minutes of training.
    "joint": TrainConfig(optimizer="adam", lr=3e-3, warmup_steps=300, lr_decay="cosine", batch_size=32,
                         max_steps=16_000, max_minutes=150.0, eval_every=500, log_every=50, clip_grad_norm=10.0,
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
            self.classes = entity_classes(data.train, data.vocab)

    def _epoch_batches(self) -> Iterator[dict]:
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
        worst_text = ", ".join(f"{t}: {e:.1%}" for t, e in worst if is_failed(e))
        text = f"val error {metrics['error']:.2%}, failed {int(metrics.get('failed_tasks', 0))}/{len(per_task)}"
        return text + (f" (worst {worst_text})" if worst_text else "")

    def memory_image(self, model: nn.Module):
        """The write/read weightings and usage on the first validation story ([H, W, 3] uint8) or None."""
        batch = to_device(collate([self.valid[0]]), next(model.parameters()).device)
        out = model(batch["ids"], mask=batch["mask"], trace=True)
        if len(out) < 3 or not out[2]:
            return None
        return viz.memory_image(out[2], sample=0, scale=2)


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
    "TRAIN_PRESETS", "DataConfig", "answer_loss", "evaluate_babi", "BabiTask", "run_config", "train_babi",
]  # fmt: skip
