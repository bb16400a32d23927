"""How to train: one dataclass, saved as config.json["train"] of every run, and the one check of its values."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from ..config import JsonConfig, flags, option
from ..errors import UserError


@dataclass
class TrainConfig(JsonConfig):
    """How to train; saved as config.json["train"]."""

    optimizer: str = option("rmsprop", "--optimizer")  # "rmsprop" (the paper), "adam" or "sgd"
    lr: float = option(1e-4, "--lr")
    momentum: float = 0.9  # RMSProp and SGD momentum
    rmsprop_alpha: float = 0.9  # RMSProp decay of the squared-gradient average (TensorFlow's default)
    eps: float | None = None  # None: 1e-10 for RMSProp (DeepMind's dnc), 1e-8 for Adam
    weight_decay: float = 0.0
    warmup_steps: int = 0  # linear warm-up of the learning rate
    lr_decay: str = "constant"  # "constant" or "cosine" (to 10% at max_steps)
    clip_grad_norm: float | None = option(None, "--clip-norm")  # global gradient-norm clipping (None: off)
    batch_size: int = option(16, "--batch-size")  # the global batch (all processes together)
    max_steps: int = option(100_000, "--max-steps")
    max_minutes: float | None = option(None, "--max-minutes")  # stop (and save) after this much training
    eval_every: int = option(1000, "--eval-every")
    log_every: int = 50
    checkpoint_every: int = 0  # save "latest" every N steps as well (0: at every evaluation only)
    checkpoint_minutes: float | None = 10.0  # ... and after this much training time since the last save
    image_every: int = 5  # a memory image to TensorBoard every N evaluations (0: never)
    eval_batch_size: int = 64
    seed: int = option(0, "--seed", fixed=True)
    device: str = option("auto", "--device")  # "auto", "cpu", "cuda" or "cuda:N"
    amp: bool = option(False, "--amp")  # bfloat16 autocast on CUDA
    # torch.compile the DNC's time step (faster on a CPU after a compile at the start)
    compile: bool = option(False, "--compile")
    # on a GPU, replay whole training steps as CUDA graphs (cuda_graphs.py); eager elsewhere
    cuda_graphs: bool = option(True, "--cuda-graphs")
    threads: int | None = option(None, "--threads")  # torch.set_num_threads (1 is fastest on a busy CPU)
    nonfinite_patience: int = 10  # non-finite steps in a row before reloading the last checkpoint
    lr_backoff: float = 0.5  # learning-rate factor after such a reload
    nonfinite_reloads: int = 3  # reloads in a row (no checkpoint saved in between) before the run gives up
    max_weight_growth: float | None = 100.0  # a checkpoint is refused when the weights' norm grew more than
    # this many times since the last one (weights that exploded, though finite); None: never
    progress: bool = option(True, "--progress")  # rich progress bar on a terminal
    tensorboard: bool = True

    def check(self) -> None:
        """UserError naming the first setting out of range, as its `train` option where it has one."""
        for f in fields(self):
            rule = RULES.get(f.name)
            value = getattr(self, f.name)
            if rule is not None and not (value is None and rule[2]) and not _holds(rule, value):
                name = flags(TrainConfig).get(f.name, f"the training setting {f.name}")
                raise UserError(f"{name} must be {rule[0]}, not {value!r}.")


def _holds(rule: tuple, value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and rule[1](value)


MAX_THREADS = 1024  # above any CPU's cores; tens of thousands abort in libgomp or crash torch

# setting -> (what it must be, test, None allowed)
RULES = {
    "lr": ("a positive number", lambda v: v > 0, False),
    "momentum": ("a number from 0 to 1", lambda v: 0 <= v <= 1, False),
    "rmsprop_alpha": ("a number from 0 to 1", lambda v: 0 <= v <= 1, False),
    "eps": ("a positive number", lambda v: v > 0, True),
    "weight_decay": ("zero or more", lambda v: v >= 0, False),
    "warmup_steps": ("zero or more steps", lambda v: v >= 0, False),
    "clip_grad_norm": ("a positive number", lambda v: v > 0, True),
    "batch_size": ("at least 1", lambda v: v >= 1, False),
    "max_steps": ("zero or more steps", lambda v: v >= 0, False),
    "max_minutes": ("a positive number of minutes", lambda v: v > 0, True),
    "eval_every": ("zero (never) or more steps", lambda v: v >= 0, False),
    "log_every": ("at least 1", lambda v: v >= 1, False),
    "checkpoint_every": ("zero (never) or more steps", lambda v: v >= 0, False),
    "checkpoint_minutes": ("zero or more minutes", lambda v: v >= 0, True),
    "image_every": ("zero (never) or more evaluations", lambda v: v >= 0, False),
    "eval_batch_size": ("at least 1", lambda v: v >= 1, False),
    "threads": (f"from 1 to {MAX_THREADS}", lambda v: 1 <= v <= MAX_THREADS, True),
    "nonfinite_patience": ("at least 1", lambda v: v >= 1, False),
    "lr_backoff": ("a number above 0 and at most 1", lambda v: 0 < v <= 1, False),
    "nonfinite_reloads": ("zero or more", lambda v: v >= 0, False),
    "max_weight_growth": ("a number above 1", lambda v: v > 1, True),
}
