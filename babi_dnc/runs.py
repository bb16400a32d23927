"""A trained bAbI run read back: a spec becomes run folders, a run folder becomes its model, vocabulary,
configs and checkpoint, each file read once.

    for run_dir in expand("runs/dnc"):      # RUN itself, or RUN/seed-0, RUN/seed-1, ...; or "pretrained:dnc"
        run = load_run(run_dir)             # checkpoint "best" (else "latest"), in eval mode
        run.model, run.vocab, run.data, run.step, run.metrics
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import CONFIG, VOCAB, Checkpoint, config_section, load_for_inference, read_config, read_json
from .data import Vocabulary
from .data.config import DataConfig
from .errors import CheckpointError, VocabularyError
from .models import BabiModel, ModelConfig, build_model
from .pretrained import resolve_run
from .train import TrainConfig


@dataclass
class LoadedRun:
    """What `load_run` returns: a bAbI run's model (in eval mode) and what it was trained with."""

    run_dir: Path
    config: dict  # config.json as saved
    model_config: ModelConfig
    data: DataConfig
    train: TrainConfig
    vocab: Vocabulary
    model: BabiModel
    checkpoint: Checkpoint

    @property
    def step(self) -> int:
        return self.checkpoint.step

    @property
    def metrics(self) -> dict:
        """The validation metrics saved with the checkpoint."""
        return self.checkpoint.meta.get("metrics", {})


def find_runs(path: str | Path) -> list[Path]:
    """Run directories at `path`: [path] if it is a run, else its seed-N sub-directories in seed order
    (else any sub-directories that are runs, sorted by name). Empty if none."""
    path = Path(path)
    if (path / CONFIG).is_file():
        return [path]
    if not path.is_dir():
        return []

    def seed_key(p: Path):
        m = re.fullmatch(r"seed-(\d+)", p.name)
        return (0, int(m.group(1)), "") if m else (1, 0, p.name)

    runs = [p for p in path.iterdir() if p.is_dir() and (p / CONFIG).is_file()]
    return sorted(runs, key=seed_key)


def expand(spec: str | Path) -> list[Path]:
    """The run directories `spec` stands for: a run, a folder of seed-N runs, or `pretrained:NAME` (a
    shipped model, pretrained.py). UserError when it stands for none."""
    path = resolve_run(spec)
    if not path.exists():
        raise CheckpointError(f"run directory {path} does not exist: pass a folder written by `babi-dnc train`.")
    runs = find_runs(path)
    if not runs:
        raise CheckpointError(f"{path} holds no run (no config.json, no seed-N folders): pass a folder written "
                              "by `babi-dnc train`.")
    return runs


def read_vocab(run_dir: str | Path) -> Vocabulary | None:
    """RUN/vocab.json as a Vocabulary; None if the run has none (CheckpointError if it is corrupt)."""
    path = Path(run_dir) / VOCAB
    if not path.exists():
        return None
    try:
        return Vocabulary.from_json(read_json(path, "vocabulary"))
    except VocabularyError as e:
        raise CheckpointError(f"vocabulary {path} is corrupt ({e}): restore it or train the run again.") from None


def load_run(run_dir: str | Path, tag: str = "best", device: str | torch.device = "cpu") -> LoadedRun:
    """The bAbI run in `run_dir` with checkpoint `tag` loaded ("best" falls back to "latest"), in eval mode.
    CheckpointError for a run that is missing, not a bAbI run, or does not load."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if config.get("kind", "babi") != "babi":
        raise CheckpointError(f"{run_dir} is a '{config.get('kind')}' run, not a bAbI run: load it with its own "
                              "loader.")
    vocab = read_vocab(run_dir)
    if vocab is None:
        raise CheckpointError(f"{run_dir / VOCAB} is missing: train the run again with `babi-dnc train`.")
    model_config = config_section(config, "model", ModelConfig, run_dir)
    model = build_model(model_config, vocab.size, vocab.answer_id)
    checkpoint = load_for_inference(run_dir, model, tag, device)
    return LoadedRun(run_dir=run_dir, config=config, model_config=model_config,
                     data=config_section(config, "data", DataConfig, run_dir),
                     train=config_section(config, "train", TrainConfig, run_dir), vocab=vocab, model=model,
                     checkpoint=checkpoint)
