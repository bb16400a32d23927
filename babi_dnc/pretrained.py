"""The trained models shipped with the package, and how a run becomes one.

    babi-dnc chat                                   # the shipped DNC
    babi-dnc eval pretrained:dnc pretrained:lstm    # wherever a command takes a run directory

A shipped model is a run directory cut down to what inference needs (babi_dnc/pretrained/<name>/):

    config.json                       the run's model, data and training configuration (data_dir removed)
    vocab.json                        the vocabulary
    metrics.jsonl                     the run's training and validation log (learning curves)
    checkpoints/best/model.safetensors, meta.json   the weights of the run's best checkpoint
    provenance.json                   the command that trained it, its training time, the step and
                                      validation error of the weights, the data checksum, the commit

so `runs.load_run` and everything built on it read it like any run. `resolve_run` turns the name
`pretrained:NAME` into that folder and leaves other paths alone.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from .checkpoint import CONFIG, META, VOCAB, WEIGHTS, load_checkpoint, read_config, write_json_atomic
from .errors import UserError
from .metrics import TASK_ERROR
from .run_folder import METRICS, read_metrics

PREFIX = "pretrained:"
PROVENANCE = "provenance.json"


def pretrained_root() -> Path:
    """The folder of the shipped models inside the installed package."""
    return Path(str(resources.files("babi_dnc") / "pretrained"))


def available() -> list[str]:
    """Names of the shipped models (folders holding a config.json)."""
    root = pretrained_root()
    return sorted(p.name for p in root.iterdir() if (p / CONFIG).is_file()) if root.is_dir() else []


def is_pretrained(spec: str | Path) -> bool:
    return str(spec).startswith(PREFIX)


def resolve_run(spec: str | Path) -> Path:
    """`pretrained:NAME` -> the shipped model's folder; any other value -> Path(spec), unchanged."""
    if not is_pretrained(spec):
        return Path(spec)
    name = str(spec)[len(PREFIX) :]
    path = pretrained_root() / name
    if not (path / CONFIG).is_file():
        names = ", ".join(PREFIX + n for n in available()) or "none are installed"
        raise UserError(f"there is no shipped model {spec!r}: use one of {names}, or a run directory.")
    return path


def provenance(spec: str | Path) -> dict:
    """The provenance.json of a shipped model ({} for a run directory or when absent)."""
    path = resolve_run(spec) / PROVENANCE
    return json.loads(path.read_text()) if path.is_file() else {}


def export_run(run_dir: str | Path, dest: str | Path, command: str, data_sha256: str, tag: str = "best",
               **extra) -> Path:
    """Copy checkpoint `tag` of `run_dir` (weights and meta.json, not the optimiser) with the run's config
    and vocabulary into `dest` as a shipped model, with provenance.json: the training `command`, the
    training time and step, the validation metrics of the weights, the checksum of the training data
    (`data.BabiData.config()["sha256"]`) and `extra` fields."""
    run_dir, dest = Path(run_dir), Path(dest)
    ckpt = load_checkpoint(run_dir, tag, trainer=False)
    config = read_config(run_dir)
    config["data"]["data_dir"] = None  # a path of the training machine; eval takes --data-dir or the default
    last = _last_metrics(run_dir)
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "checkpoints" / "best").mkdir(parents=True)
    write_json_atomic(dest / CONFIG, config)
    shutil.copyfile(run_dir / VOCAB, dest / VOCAB)
    if (run_dir / METRICS).is_file():  # the learning curves of the report
        shutil.copyfile(run_dir / METRICS, dest / METRICS)
    shutil.copyfile(ckpt.path / WEIGHTS, dest / "checkpoints" / "best" / WEIGHTS)
    shutil.copyfile(ckpt.path / META, dest / "checkpoints" / "best" / META)
    record = {
        "command": command,
        "checkpoint": tag,
        "step": ckpt.step,
        "validation": {k: v for k, v in ckpt.meta.get("metrics", {}).items() if not k.startswith(TASK_ERROR)},
        "training_steps": last.get("step"),
        "training_minutes": round(last.get("elapsed_s", 0.0) / 60, 1),
        "data_sha256": data_sha256,
        **extra,
    }
    write_json_atomic(dest / PROVENANCE, record)
    return dest


def _last_metrics(run_dir: Path) -> dict:
    """The last line of RUN/metrics.jsonl that has an elapsed training time ({} if none)."""
    return next((row for row in reversed(read_metrics(run_dir)) if "elapsed_s" in row), {})

