"""The optimiser (RMSProp as in the paper, Adam or SGD) and the learning-rate schedule (warm-up, decay,
and the back-off after non-finite reloads)."""

from __future__ import annotations

import math

import torch

from ..errors import UserError
from .config import TrainConfig


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """RMSProp (the paper), Adam or SGD as `config` says."""
    params = [p for p in params if p.requires_grad]
    if config.optimizer == "rmsprop":
        eps = 1e-10 if config.eps is None else config.eps
        return torch.optim.RMSprop(
            params, lr=config.lr, alpha=config.rmsprop_alpha, eps=eps, momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
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
