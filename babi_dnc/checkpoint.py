"""Checkpoints and run directories: atomic, validated, loadable without the code that trained them.

Run directory layout (written by `train.fit`; nothing here knows what the model or task is):

    RUN/config.json          {"kind": "babi"|"copy", "model": {...}, "data": {...}, "train": {...}}
    RUN/vocab.json           the vocabulary (bAbI runs), `Vocabulary.to_json()`; read back by runs.read_vocab
    RUN/metrics.jsonl        one JSON object per line: {"step", "kind": "train"|"eval"|..., ...}
    RUN/tb/                  TensorBoard events
    RUN/checkpoints/<tag>/   tag "latest" (the newest state) and "best" (lowest validation error)
        model.safetensors    the weights (`model.state_dict()`, safetensors)
        trainer.pt           optimiser, scheduler, RNG states, task state, step, counters
                             (torch.save; read back with torch.load(weights_only=True))
        meta.json            {"step", "tag", "time", "metrics", "files": {name: sha256}, ...}
    RUN/seed-N/              with `train --seeds K`: one full run directory per seed

Atomicity. `save_checkpoint` writes every file into `checkpoints/.tmp-<tag>-<pid>/`, fsyncs the files and
the folder, then swaps it in with two renames:

    <tag>  -> .old-<tag>        (only if <tag> exists)
    .tmp-<tag>-<pid> -> <tag>
    remove .old-<tag>

A kill at any moment leaves a complete checkpoint: before the first rename `<tag>` is the previous one;
between the renames `<tag>` is missing and `resolve_checkpoint` falls back to `.old-<tag>`; after the
second rename `<tag>` is the new one. Leftover `.tmp-*` folders are ignored and removed by the next save.
A save that fails (a full disk, a folder that became read-only) removes its `.tmp-*` folder, puts the
previous checkpoint back where the swap had moved it, and raises CheckpointError with the reason.

Validation. `load_checkpoint` checks that the files exist, that their sha256 match meta.json, that
safetensors and torch can parse them and, given a model, that every tensor name and shape matches;
any failure raises `CheckpointError` with one sentence saying what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .config import JsonConfig
from .errors import CheckpointError, UserError
from .hashing import sha256_file

JsonConfigT = TypeVar("JsonConfigT", bound=JsonConfig)

WEIGHTS, TRAINER, META = "model.safetensors", "trainer.pt", "meta.json"
CONFIG, VOCAB = "config.json", "vocab.json"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """What `load_checkpoint` returns."""

    path: Path  # the checkpoint folder that was read
    weights: dict[str, torch.Tensor]  # the model's state_dict, as saved
    meta: dict[str, Any]  # meta.json
    trainer: dict[str, Any] | None = field(default=None)  # trainer.pt (None when not asked for)

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))

    @property
    def tag(self) -> str:
        """"best" or "latest", also when read from the `.old-<tag>` folder of a save cut between renames."""
        return self.path.name.removeprefix(".old-")


# ------------------------------------------------------------------------------------------ helpers


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DistributedDataParallel and torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):  # DDP / DataParallel
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        else:
            return model


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform or file system can fsync a folder
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


WRITE_ERRORS = (OSError, SafetensorError, RuntimeError)  # torch.save reports a failed write as RuntimeError


def io_reason(error: BaseException, folder: Path | None = None) -> str:
    """Why a read or write failed, in a few words: the system's reason ("No space left on device") where
    the error carries one, else the first line of its message."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error)
    code = re.search(r"(?:os error|code:) (\d+)", text)  # io::Error as shown by safetensors (Display or Debug)
    if code:
        return os.strerror(int(code.group(1)))
    with contextlib.suppress(OSError):
        if folder is not None and shutil.disk_usage(folder).free < 1 << 20:
            return os.strerror(28)  # "No space left on device", said as such by neither safetensors nor torch
    if "write failed" in text or "PytorchStreamWriter" in text:  # torch.save's inline_container
        return "a file could not be written, is the disk full?"
    return (text.splitlines() or [type(error).__name__])[0][:200]


def ensure_folder(path: str | Path, option: str) -> Path:
    """Make folder `path` (and its parents) and check that files can be written in it; CheckpointError
    naming `option` when not (a file in the way, no permission, a read-only or full disk)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        reason = "a file is in the way" if isinstance(e, FileExistsError | NotADirectoryError) else io_reason(e)
        raise CheckpointError(f"cannot write into {path} ({reason}): choose another {option}.") from None
    return path


def write_atomic(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Write `path` through `write(file)` into a temporary file beside it, fsynced and renamed over it, so a
    kill at any moment leaves the old file or the new one whole and readers never see half a file (a
    symbolic link at `path` is replaced, never written through); CheckpointError (and no temporary file
    left) when it cannot be written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write {path} ({io_reason(e, path.parent)}): free some space or fix the "
                              "folder's permissions, then run the command again.") from None
    _fsync_dir(path.parent)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to `path` atomically (write_atomic)."""
    data = (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode()
    write_atomic(path, lambda f: f.write(data))


def read_json(path: Path, what: str) -> Any:
    """JSON from `path`; CheckpointError naming `what` when it is missing or corrupt."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing: point at a run directory written by `babi-dnc train`.") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{what} {path} is corrupt: restore it or train the run again.") from None


def _state_dict_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict as contiguous CPU tensors; tied or shared tensors are cloned (safetensors needs that)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in unwrap(model).state_dict().items()}


# --------------------------------------------------------------------------------------- save / load


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def resolve_checkpoint(run_dir: str | Path, tag: str = "latest") -> Path | None:
    """The folder of checkpoint `tag`: `<tag>`, or `.old-<tag>` if a save was cut between its renames."""
    root = checkpoint_dir(run_dir)
    for candidate in (root / tag, root / f".old-{tag}"):
        if (candidate / META).is_file():
            return candidate
    return None


def save_checkpoint(
    run_dir: str | Path,
    tag: str,
    model: nn.Module,
    trainer_state: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint `tag` ("latest", "best", ...) of `model` atomically; returns its folder.

    trainer_state: anything torch.load(weights_only=True) can read back (tensors, numbers, strings,
        lists, tuples, dicts): optimiser and scheduler state dicts, RNG states, the task's state, step.
    meta: small JSON-able facts (step, metrics); "tag", "time", "files" and "format" are added.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]+", tag):
        raise ValueError(f"checkpoint tag must be letters, digits, '-' or '_', got {tag!r}")
    root = checkpoint_dir(run_dir)
    weights = _state_dict_cpu(model)
    tmp = root / f".tmp-{tag}-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(f".tmp-{tag}-*"):  # a save that was killed half-way
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
        _write_checkpoint_files(tmp, tag, weights, trainer_state, meta)
        return _swap_in(root, tag, tmp)
    except WRITE_ERRORS as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _put_back(root, tag)
        raise CheckpointError(
            f"cannot save checkpoint '{tag}' in {root} ({io_reason(e, root)}): free some space or fix the "
            "folder's permissions, then continue with --resume from the checkpoint saved before."
        ) from None


def _write_checkpoint_files(tmp: Path, tag: str, weights: dict[str, torch.Tensor], trainer_state: dict | None,
                            meta: dict | None) -> None:
    """The three files of a checkpoint in `tmp`, written and fsynced."""
    save_file(weights, str(tmp / WEIGHTS), metadata={"format": "pt"})
    torch.save(trainer_state or {}, tmp / TRAINER)
    files = {}
    for name in (WEIGHTS, TRAINER):
        _fsync_file(tmp / name)
        files[name] = sha256_file(tmp / name)
    meta = dict(meta or {}, tag=tag, time=time.strftime("%Y-%m-%dT%H:%M:%S%z"), files=files, format=FORMAT_VERSION)
    (tmp / META).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    _fsync_file(tmp / META)
    _fsync_dir(tmp)


def _swap_in(root: Path, tag: str, tmp: Path) -> Path:
    """<tag> -> .old-<tag>, tmp -> <tag>, remove .old-<tag> (see the module docstring)."""
    final, old = root / tag, root / f".old-{tag}"
    if final.exists():
        if old.exists():  # a complete <tag> exists, so a leftover .old-<tag> is stale
            shutil.rmtree(old)
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_dir(root)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _put_back(root: Path, tag: str) -> None:
    """After a failed swap: .old-<tag> back to <tag> if the swap had moved it away."""
    final, old = root / tag, root / f".old-{tag}"
    if not final.exists() and (old / META).is_file():
        with contextlib.suppress(OSError):
            os.rename(old, final)


def load_checkpoint(
    run_dir: str | Path,
    tag: str = "latest",
    model: nn.Module | None = None,
    map_location: str | torch.device = "cpu",
    trainer: bool = True,
    verify: bool = True,
) -> Checkpoint:
    """Read and validate checkpoint `tag`; if `model` is given, load the weights into it (strict).

    trainer: also read trainer.pt (False for inference: only the weights and meta.json).
    verify: check the sha256 of every file against meta.json.
    Raises CheckpointError for a missing, corrupt or mismatched checkpoint. A training that saves `tag`
    while it is read swaps its folder (see the module docstring), so the reader may meet files of two
    checkpoints or a folder removed half-way: a failed read is tried again while the folder keeps changing.
    """
    tries = 0
    while True:
        before = _folder_id(run_dir, tag)
        try:
            return _read_checkpoint(run_dir, tag, model, map_location, trainer, verify)
        except (CheckpointError, OSError):  # OSError: a file removed between its check and its read
            tries += 1
            if tries == LOAD_TRIES or _folder_id(run_dir, tag) == before:
                raise
        time.sleep(0.05 * tries)


LOAD_TRIES = 5  # reads of a checkpoint that a training keeps replacing


def _folder_id(run_dir: str | Path, tag: str) -> tuple | None:
    """Which folder checkpoint `tag` is now (a save puts a new one in its place), or None."""
    path = resolve_checkpoint(run_dir, tag)
    with contextlib.suppress(OSError):
        if path is not None:
            stat = path.stat()
            return path.name, stat.st_dev, stat.st_ino
    return None


def _read_checkpoint(run_dir: str | Path, tag: str, model: nn.Module | None, map_location: str | torch.device,
                     trainer: bool, verify: bool) -> Checkpoint:
    """One read of checkpoint `tag` (load_checkpoint)."""
    path = resolve_checkpoint(run_dir, tag)
    if path is None:
        folder = checkpoint_dir(run_dir) / tag
        if not folder.is_dir():
            raise _unloadable(f"no checkpoint '{tag}' in {run_dir}", "train it first with `babi-dnc train` or pick "
                              "another run")
        raise _unloadable(f"{folder / META} is missing")
    meta = read_json(path / META, "checkpoint metadata")
    files = meta.get("files", {}) if isinstance(meta, dict) else None
    if not isinstance(files, dict):
        raise _unloadable(f"{path / META} is not a checkpoint's metadata")
    for name in [WEIGHTS] + ([TRAINER] if trainer else []):
        if not (path / name).is_file():
            raise _unloadable(f"{path / name} is missing")
        if verify and files.get(name) is not None and sha256_file(path / name) != files[name]:
            raise _unloadable(f"{path / name} does not match its checksum (corrupt file)")
    try:
        weights = load_file(str(path / WEIGHTS), device=str(map_location))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _unloadable(f"{path / WEIGHTS} cannot be read ({e})") from None
    state = None
    if trainer:
        try:
            state = torch.load(path / TRAINER, map_location=map_location, weights_only=True)
        except Exception as e:  # pickle errors come in many types
            raise _unloadable(f"{path / TRAINER} cannot be read ({type(e).__name__})") from None
        if not isinstance(state, dict):
            raise _unloadable(f"{path / TRAINER} holds no trainer state")
    if model is not None:
        load_weights(unwrap(model), weights, source=path)
    return Checkpoint(path=path, weights=weights, meta=meta, trainer=state)


def _unloadable(problem: str, todo: str = "use another checkpoint or train again") -> CheckpointError:
    """The CheckpointError of a checkpoint that does not load; `.problem` is the problem alone."""
    error = CheckpointError(f"{problem}: {todo}.")
    error.problem = problem
    return error


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], source: Any = "checkpoint") -> None:
    """Copy `weights` into `model` after checking every name and shape; CheckpointError on a mismatch."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(
            f"the weights in {source} do not fit this model ({detail}): check config.json matches the model."
        )
    for name, tensor in weights.items():
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise CheckpointError(
                f"the weights in {source} do not fit this model ({name} has shape {tuple(tensor.shape)}, "
                f"the model expects {tuple(own[name].shape)}): check config.json matches the model."
            )
    model.load_state_dict(weights, strict=True)


# ----------------------------------------------------------------------------------- run directories


def write_run_files(run_dir: str | Path, config: dict, files: dict[str, Any] | None = None) -> None:
    """Write RUN/config.json and each of `files` ({name: JSON object}, e.g. {"vocab.json": ...}), atomically."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / CONFIG, config)
    for name, obj in (files or {}).items():
        write_json_atomic(run_dir / name, obj)


CONFIG_SECTIONS = ("model", "data", "train", "task")


def read_config(run_dir: str | Path) -> dict:
    """RUN/config.json as a dict whose sections ("model", "data", "train", "task") are dicts; CheckpointError if it
    is missing, corrupt or of another shape."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist: pass a folder written by `babi-dnc train`.")
    config = read_json(run_dir / CONFIG, "run config")
    shape = _json_type(config) if not isinstance(config, dict) else next(
        (f"its '{s}' is {_json_type(config[s])}" for s in CONFIG_SECTIONS if not isinstance(config.get(s, {}), dict)),
        None)
    if shape:
        raise CheckpointError(f"{run_dir / CONFIG} is not a run configuration ({shape}, not an object): restore it "
                              "or train the run again.")
    return config


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def config_section(config: dict, section: str, cls: type[JsonConfigT], run_dir: str | Path) -> JsonConfigT:
    """Section `section` of a run's config (read_config) as the JsonConfig dataclass `cls`; CheckpointError
    when it is missing, a field has the wrong type or the settings fail the section's `check`."""
    path = Path(run_dir) / CONFIG
    if section not in config:
        raise CheckpointError(f"{path} has no '{section}' section: restore it or train the run again.")
    try:
        loaded = cls.from_dict(config[section])
        loaded.check()
        return loaded
    except (TypeError, ValueError, UserError) as e:
        raise CheckpointError(f"{path} has no valid '{section}' section ({str(e).rstrip('.')}): restore it or "
                              "train the run again.") from None


def load_for_inference(run_dir: str | Path, model: nn.Module, tag: str = "best",
                       device: str | torch.device = "cpu") -> Checkpoint:
    """Load checkpoint `tag` of a run into `model` (weights only), move it to `device`, put it in eval mode.
    "best" falls back to "latest" while the run has no best checkpoint yet."""
    if tag == "best" and resolve_checkpoint(run_dir, "best") is None and resolve_checkpoint(run_dir, "latest"):
        tag = "latest"
    checkpoint = load_checkpoint(run_dir, tag, model=model, map_location="cpu", trainer=False)
    model.to(device).eval()
    return checkpoint
