"""A trained bAbI run read back: its vocabulary and its model, from RUN/config.json and a checkpoint.

    model, info = load_run("runs/dnc-small")      # checkpoint "best" (else "latest"), in eval mode
    info["vocab"], info["step"], info["metrics"]   # the run's Vocabulary, the checkpoint's step and metrics
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import VOCAB, config_section, load_trained, read_config, read_json
from .data import Vocabulary
from .errors import CheckpointError, VocabularyError
from .models import BabiModel, ModelConfig, build_model


def read_vocab(run_dir: str | Path) -> Vocabulary | None:
    """RUN/vocab.json as a Vocabulary; None if the run has none (CheckpointError if it is corrupt)."""
    path = Path(run_dir) / VOCAB
    if not path.exists():
        return None
    try:
        return Vocabulary.from_json(read_json(path, "vocabulary"))
    except VocabularyError as e:
        raise CheckpointError(f"vocabulary {path} is corrupt ({e}): restore it or train the run again.") from None


def load_run(run_dir: str | Path, tag: str = "best", device: str | torch.device = "cpu") -> tuple[BabiModel, dict]:
    """The model of a bAbI run with checkpoint `tag` loaded ("best" falls back to "latest"), in eval mode.

    Returns (model, info) with info = {"config", "vocab" (a Vocabulary), "step", "metrics", "meta", "path",
    "run_dir"}. CheckpointError for a run that is missing, not a bAbI run, or does not load.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if config.get("kind", "babi") != "babi":
        kind = config.get("kind")
        raise CheckpointError(f"{run_dir} is a '{kind}' run, not a bAbI run: load it with its own loader.")
    vocab = read_vocab(run_dir)
    if vocab is None:
        raise CheckpointError(f"{run_dir / VOCAB} is missing: train the run again with `babi-dnc train`.")

    def build(config: dict, vocab_json) -> BabiModel:
        return build_model(config_section(config, "model", ModelConfig, run_dir), vocab.size, vocab.answer_id)

    model, info = load_trained(run_dir, build, tag, device)
    return model, {**info, "vocab": vocab}
