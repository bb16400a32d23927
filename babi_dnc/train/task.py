"""What `fit` trains on: a Task defines five methods; the hooks have defaults here (see the package docstring)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn


class Task:
    """Base class of the tasks `fit` trains on (bAbI, copy). `unit` names a batch row in the progress line."""

    unit = "sequences"

    def next_batch(self, step: int) -> dict[str, Tensor]:
        """The global batch of training step `step` (reproducible from the task's state)."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """(loss, stats summed over the logging window, e.g. {"tokens", "correct"}); no host sync."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics, with "error" (lower is better): the best checkpoint is chosen by it."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    # hooks

    def run_files(self) -> dict[str, Any]:
        """{file name: JSON object} written into the run folder beside config.json (bAbI: vocab.json)."""
        return {}

    def progress_fields(self) -> dict[str, str]:
        """Extra fields of the progress line, e.g. {"epoch": "1.25"}."""
        return {}

    def on_evaluate(self, metrics: dict[str, float]) -> None:
        """Called on every process after each validation."""

    def summary(self, metrics: dict[str, float]) -> str:
        """A validation in words, for the progress line."""
        return f"error {metrics['error']:.2%}"

    def format_error(self, error: float) -> str:
        """A validation error in the task's unit."""
        return f"{error:.2%}"

    def memory_image(self, model: nn.Module):
        """An [H, W, 3] uint8 picture of the model's memory for TensorBoard, or None."""
        return None

    def should_stop(self, metrics: dict[str, float]) -> bool:
        """Stop training after this validation (e.g. the task is solved)."""
        return False
