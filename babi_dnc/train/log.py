"""What a run logs: RUN/metrics.jsonl (one JSON object per line) and TensorBoard scalars and images."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

from ..checkpoint import io_reason
from ..errors import CheckpointError
from ..run_folder import METRICS, keep_metrics, open_run_file


class MetricsLog:
    """RUN/metrics.jsonl (one JSON object per line) and TensorBoard scalars; a no-op off process 0.
    A write that fails (a full disk) raises CheckpointError with the reason."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool, resume_step: int | None):
        self.enabled = enabled
        self.path = run_dir / METRICS
        self.writer = None
        self.note: str | None = None  # what resuming dropped from the log, for the user
        if not enabled:
            return
        try:
            if resume_step is not None and os.path.lexists(self.path):
                dropped = keep_metrics(self.path, resume_step)
                if dropped:
                    self.note = (f"dropped {dropped} damaged line{'s' if dropped > 1 else ''} of {self.path} (not a "
                                 "JSON object: a kill cut it, or the file was changed); its other lines are kept")
            fd = open_run_file(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            self.file = os.fdopen(fd, "a", buffering=1, encoding="utf-8")
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


def _json_default(x):
    if isinstance(x, Tensor):
        return x.item() if x.numel() == 1 else x.tolist()
    if isinstance(x, (np.generic,)):
        return x.item()
    return str(x)
