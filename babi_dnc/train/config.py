"""How to train: one dataclass, saved as config.json["train"] of every run."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import JsonConfig


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
    compile: bool = False  # torch.compile the DNC's time step (faster on a CPU after a compile at the start)
    threads: int | None = None  # torch.set_num_threads (1 is fastest on a busy CPU)
    nonfinite_patience: int = 10  # non-finite steps in a row before reloading the last checkpoint
    lr_backoff: float = 0.5  # learning-rate factor after such a reload
    augment: bool = False  # bAbI: rename the entities of each training story at random (see augment.py)
    progress: bool = True  # rich progress bar on a terminal
    tensorboard: bool = True
