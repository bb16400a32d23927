"""What a run logs: RUN/metrics.jsonl (one JSON object per line) and TensorBoard scalars and images."""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import numpy as np
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

from ..checkpoint import io_reason
from ..errors import CheckpointError
from ..run_folder import METRICS


class MetricsLog:
    """RUN/metrics.jsonl (one JSON object per line) and TensorBoard scalars; a no-op off process 0.
    A write that fails (a full disk) raises CheckpointError with the reason."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool, resume_step: int | None):
        self.enabled = enabled
        self.path = run_dir / METRICS
        self.writer = None
        if not enabled:
            return
        try:
            if resume_step is not None and self.path.exists():  # drop what the interrupted run logged later
                lines = [line for line in self.path.read_text().splitlines() if line.strip()]
                kept = [line for line in lines if _step_of(line) <= resume_step]
                self.path.write_text("".join(line + "\n" for line in kept))
            self.file = open(self.path, "a", buffering=1)  # noqa: SIM115 - closed in close()
            if tensorboard:
                purge = resume_step + 1 if resume_step is not None else None  # drop the interrupted run's later events
                self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=purge)
        except OSError as e:
            raise self._failed(e) from None

    def _failed(self, error: OSError) -> CheckpointError:
        return CheckpointError(f"cannot write {self.path} ({io_reason(error, self.path.parent)}): free some space or "
                               "fix the folder's permissions, then continue with --resume.")

    def log(self, step: int, kind: str, **values) -> None:
        if not self.enabled:
            return
        row = {"step": step, "kind": kind, "time": round(time.time(), 3), **values}
        try:
            self.file.write(json.dumps(row, default=_json_default) + "\n")
        except OSError as e:
            raise self._failed(e) from None
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self.writer.add_scalar(f"{kind}/{key}", value, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        if self.enabled and self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        if self.enabled:
            with contextlib.suppress(OSError):  # the last buffered line of a full disk
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
