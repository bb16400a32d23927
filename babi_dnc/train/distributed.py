"""Devices and processes: the device to train on, torchrun's process group, and each process's rows of a
global batch (DistributedDataParallel: every process trains on its own share, gradients are averaged)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from ..errors import UserError


@dataclass
class DistEnv:
    """This process's place among torchrun's processes (world_size 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owned: bool = False  # init_distributed created the process group, so close_distributed destroys it

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
    return DistEnv(dist.get_rank(), dist.get_world_size(), local_rank, owned=True)


def close_distributed(env: DistEnv) -> None:
    """Leave the process group `env` created: all processes meet first, so none exits while another still
    talks to it (a gloo process whose peer vanished mid-exchange aborts, and its exit status is lost)."""
    if env.owned and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def resolve_device(device: str, env: DistEnv | None = None) -> torch.device:
    """'auto' -> CUDA if available else CPU; 'cpu', 'cuda' or 'cuda:N' as asked (UserError if unusable);
    plain 'cuda' is this process's GPU under DDP, else the current one."""
    env = env or DistEnv()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError:
        kind = None
    if kind not in ("cpu", "cuda"):
        raise UserError(f"--device must be auto, cpu, cuda or cuda:N, not {device!r}.")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu or auto.")
        if device == "cuda":
            device = f"cuda:{env.local_rank if env.active else torch.cuda.current_device()}"
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
    """Every tensor of a batch on `device` (other values as they are)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}
