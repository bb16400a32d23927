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
from .checkpoint import CONFIG, VOCAB, config_section, read_config
from .config import JsonConfig
from .data import collate, iterate_batches, load_babi, packed_columns, parse_task_spec, select_tasks, tasks_in
from .data.sampling import ROUND_BATCHES, iterate_round
from .errors import CheckpointError, DataError, UserError
from .metrics import IGNORE_INDEX, is_failed, per_task_errors, question_results, summarize, task_errors
from .models import ModelConfig, build_model
from .run_folder import check_seeds_folder, start_mode
from .runs import read_vocab
from .train import TrainConfig, close_distributed, fit, init_distributed, seed_everything, to_device

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
}


@dataclass
class DataConfig(JsonConfig):
    """Which bAbI data to train on; saved as config.json["data"]."""

    set_name: str = "en-10k"  # "en-10k" or "en"
    tasks: str = "all"  # "all" or a list such as "1,2,5-7"
    data_dir: str | None = None  # None: env BABI_DNC_DATA, else the Hugging Face Hub
    valid_fraction: float = 0.1
    seed: int = 0  # the validation split; the same for every training seed
    valid_stories: int | None = None  # validate on the first N validation stories of each task (None: all)
    # where an en-10k training file is missing (task 3 in some copies), train on the en (1k) one of the task
    fallback_1k: bool = False
    # task 16's training stories rewritten so that its most-common-colour shortcut no longer pays
    # (Franke et al. 2018; data/induction.py); validation and test stories are never rewritten
    augment_16: bool = False


def load_data(dc: DataConfig, vocab=None, data_dir: str | Path | None = None):
    """The bAbI data a run's DataConfig names (data.BabiData), with its saved vocabulary when given, from
    `data_dir` when given (else the config's): the one path by which training and evaluation load a run's data."""
    return load_babi(set_name=dc.set_name, tasks=dc.tasks, data_dir=data_dir or dc.data_dir,
                     valid_fraction=dc.valid_fraction, seed=dc.seed, vocab=vocab, fallback_1k=dc.fallback_1k,
                     augment_16=dc.augment_16)


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

    def memory_image(self, model: nn.Module):
        """The write/read weightings and usage on the first validation story ([H, W, 3] uint8) or None."""
        batch = to_device(collate([self.valid[0]]), next(model.parameters()).device)
        out = model(batch["ids"], mask=batch["mask"], trace=True)
        if len(out) < 3 or not out[2]:
            return None
        return viz.memory_image(out[2], sample=0, scale=2)


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


def run_config(model_config: ModelConfig, data_config: DataConfig, train_config: TrainConfig) -> dict:
    """What fit writes to config.json for a bAbI run."""
    return {"kind": "babi", "model": model_config.to_dict(), "data": data_config.to_dict(),
            "train": train_config.to_dict()}


ASKED_OPTIONS = {"model": "--model", "set_name": "--set", "tasks": "--tasks", "fallback_1k": "--fallback-1k",
                 "augment_16": "--augment-16", "valid_stories": "--eval-stories", "seed": "--seed"}
# model settings that `train` options set: a resumed run keeps its own, so a different value is refused
ASKED_MODEL_OPTIONS = {"embedding": "--embedding", "bypass_dropout": "--bypass-dropout", "sharpness": "--sharpness",
                       "memory_slots": "--memory-slots", "word_size": "--word-size", "read_heads": "--read-heads",
                       "controller_size": "--controller-size", "lstm_size": "--lstm-size",
                       "think_steps": "--think-steps", "backward_reader": "--backward-reader",
                       "interface_norm": "--interface-norm", "links": "--links"}


@dataclass
class RunPlan:
    """One run of `train_babi`: its folder, how it starts (run_folder.start_mode) and its configs."""

    run_dir: Path
    mode: str
    model: ModelConfig
    data: DataConfig
    train: TrainConfig


def saved_configs(run_dir: Path) -> tuple[ModelConfig, DataConfig, TrainConfig]:
    """The model, data and training configs a bAbI run was trained with (CheckpointError if unreadable)."""
    if not (run_dir / CONFIG).is_file():
        raise CheckpointError(f"{run_dir / CONFIG} is missing, so the run cannot be resumed: restore it, or pass "
                              "--restart to start over.")
    saved = read_config(run_dir)
    return (config_section(saved, "model", ModelConfig, run_dir), config_section(saved, "data", DataConfig, run_dir),
            config_section(saved, "train", TrainConfig, run_dir))


def _check_asked(plan: RunPlan, asked: dict, n: int, preset_model: ModelConfig) -> None:
    """UserError when an option given for resumed run `n` (of --seeds) differs from what the run was trained
    with; --preset, when its model (with the model options given) is not the run's."""
    saved = {"model": plan.model.model, "set_name": plan.data.set_name, "tasks": plan.data.tasks,
             "fallback_1k": plan.data.fallback_1k, "augment_16": plan.data.augment_16,
             "valid_stories": plan.data.valid_stories, "seed": plan.train.seed - n}
    saved |= {k: getattr(plan.model, k) for k in ASKED_MODEL_OPTIONS}
    names = ASKED_OPTIONS | ASKED_MODEL_OPTIONS
    same = {"tasks": lambda a, b: parse_task_spec(a) == parse_task_spec(b)}
    differ = [k for k in names if asked.get(k) is not None
              and not same.get(k, str.__eq__)(str(asked[k]), str(saved[k]))]
    if differ:
        was = " ".join(f"{names[k]} {'(none)' if saved[k] is None else saved[k]}" for k in differ)
        now = " ".join(f"{names[k]} {asked[k]}" for k in differ)
        raise UserError(f"{plan.run_dir} was trained with {was}, not {now}: leave {now} out to resume it as it is, "
                        "or pass --restart to start over with it.")
    ours, theirs = plan.model.to_dict(), preset_model.to_dict()
    if asked.get("preset") and ours != theirs:
        differ = [f"{k} {ours.get(k)}, not {theirs.get(k)}" for k in sorted(set(ours) | set(theirs))
                  if ours.get(k) != theirs.get(k)]
        shown = "; ".join(differ[:3]) + ("; ..." if len(differ) > 3 else "")
        raise UserError(f"{plan.run_dir} was trained with another model than --preset {asked['preset']}'s ({shown}): "
                        "leave --preset out to resume it as it is, or pass --restart to start over with it.")


def plan_run(run_dir: Path, n: int, configs: tuple[ModelConfig, DataConfig, TrainConfig], resume: bool,
             restart: bool, train_overrides: dict, asked: dict) -> RunPlan:
    """How run `n` starts and with which configs: on resume, its saved ones (training fields replaced by
    train_overrides, the data folder by asked["data_dir"]); refusals before any data is loaded."""
    mc, dc, tc = configs
    plan = RunPlan(run_dir, start_mode(run_dir, resume, restart), mc, dc, dataclasses.replace(tc, seed=tc.seed + n))
    if plan.mode == "resume":
        plan.model, plan.data, saved_train = saved_configs(run_dir)
        plan.train = dataclasses.replace(saved_train, **train_overrides)
        _check_asked(plan, asked, n, mc)
        if asked.get("data_dir"):
            plan.data = dataclasses.replace(plan.data, data_dir=asked["data_dir"])
    plan.train.check()
    return plan


def train_babi(
    model_config: ModelConfig,
    data_config: DataConfig,
    train_config: TrainConfig,
    out: str | Path,
    seeds: int = 1,
    resume: bool = False,
    train_overrides: dict | None = None,
    restart: bool = False,
    asked: dict | None = None,
) -> list[dict]:
    """Train `seeds` runs (RUN, or RUN/seed-N with seed = train_config.seed + N when seeds > 1).

    How each run folder may be used is run_folder.py's rule: a folder that holds a run is refused unless
    resume (continue it with its saved model, data and training configs; train_overrides, e.g.
    {"max_steps": ...}, replace saved training fields) or restart (delete it, start afresh). asked: the
    options given explicitly ({"model", "set_name", "tasks", "data_dir"}); a resumed run trained with
    another model, set or tasks is refused. Returns fit's summaries (it stops after an interrupted one).
    """
    out = Path(out)
    env = init_distributed(train_config.device)
    if seeds < 1:
        raise UserError("--seeds must be at least 1.")
    runs = [out] if seeds == 1 else [out / f"seed-{n}" for n in range(seeds)]
    if seeds > 1:
        check_seeds_folder(out, restart=restart and env.is_main, keep=seeds)
    configs = (model_config, data_config, train_config)
    plans = [plan_run(run_dir, n, configs, resume, restart, train_overrides or {}, asked or {})
             for n, run_dir in enumerate(runs)]
    if env.active:
        dist.barrier()  # every process checked `out` before process 0 writes to it

    data_cache: dict[str, Any] = {}
    summaries = []
    for plan in plans:
        data = _plan_data(plan, data_cache, env)
        seed_everything(plan.train.seed)
        model = build_model(plan.model, data.vocab.size, data.vocab.answer_id)
        tc = plan.train
        first = parse_task_spec(tc.curriculum_tasks) if tc.curriculum_steps else None
        task = BabiTask(data, tc.batch_size, seed=tc.seed, eval_batch_size=tc.eval_batch_size,
                        valid_stories=plan.data.valid_stories, augment=tc.augment, sampling=tc.task_sampling,
                        curriculum_tasks=first, curriculum_steps=tc.curriculum_steps)
        summary = fit(model, task, tc, plan.run_dir, run_config(plan.model, plan.data, tc), vocab=data.vocab,
                      resume=resume, restart=restart)
        summaries.append(summary)
        if summary["interrupted"]:
            break
    close_distributed(env)
    return summaries


def _plan_data(plan: RunPlan, cache: dict[str, Any], env):
    """The bAbI data of a run (with its saved vocabulary on resume), loaded once per data config."""
    saved_vocab = read_vocab(plan.run_dir) if plan.mode == "resume" else None
    dc = plan.data
    key = json.dumps(dc.to_dict(), sort_keys=True)
    if key not in cache:
        if env.active and not env.is_main:
            dist.barrier()  # process 0 fills the dataset cache first
        cache[key] = load_data(dc, saved_vocab)
        if env.active and env.is_main:
            dist.barrier()
    if saved_vocab is not None:
        _check_saved_vocab(cache[key], plan.run_dir)
    return cache[key]


def _check_saved_vocab(data, run_dir: Path) -> None:
    """CheckpointError when a resumed run's vocab.json lacks words of its training files (it was changed, or
    the data is other than the run's): its weights would be read against the wrong words."""
    unknown = data.unknown.get("train")
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise CheckpointError(f"{len(unknown)} words of the training stories ({shown}) are not in {run_dir / VOCAB}, "
                              "so it does not match the run's checkpoint and data: restore vocab.json, pass the "
                              "--data-dir the run was trained on, or pass --restart to start over.")


__all__ = [
    "TRAIN_PRESETS", "DataConfig", "load_data", "answer_loss", "evaluate_babi", "BabiTask", "run_config",
    "saved_configs", "train_babi",
]
