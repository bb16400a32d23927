"""A run folder's ownership: one writer at a time, and how a training starts in it (fresh, resumed or
restarted), so that a run can be neither wiped nor shared by accident.

    RUN/.lock   {"pid", "host", "started", "command"} of the one training that writes RUN, held with
                flock while it runs; the system releases it when that process dies (kill -9 too), so the
                next training takes a stale lock over, with a note naming the dead owner

The rule (`start_mode`, checked before anything is written and again once the lock is held):

    a folder that does not exist or is empty    a fresh run (with --resume too: nothing to continue)
    a file, or a folder of other files          refused, whatever the options: nothing is written there
    a folder that holds a run                   refused, unless
        --resume    it continues from the newest checkpoint that loads: latest, else best (the broken
                    latest is moved aside, not overwritten), else it stops and says what is missing
        --restart   its run files are deleted first; the only way to begin again in such a folder

A run folder "holds a run" when it has config.json, metrics.jsonl or checkpoints/; one whose training
never reached its first checkpoint (nothing logged, nothing saved) is started afresh by --resume.

The lock and the log are opened so that a symbolic link in their place is refused (nothing is written
through a link out of the folder), and every rewrite of a run file is atomic (checkpoint.write_atomic).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .checkpoint import (
    CONFIG,
    VOCAB,
    Checkpoint,
    checkpoint_dir,
    io_reason,
    load_checkpoint,
    resolve_checkpoint,
    write_atomic,
)
from .errors import CheckpointError, UserError

try:
    import fcntl
except ImportError:  # not on Windows: the owner's pid and host decide instead
    fcntl = None

LOCK = ".lock"
METRICS = "metrics.jsonl"
MARKERS = (CONFIG, METRICS, "checkpoints")  # a folder with one of these holds a run
RUN_FILES = (*MARKERS, VOCAB, "tb")  # what --restart deletes


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The rows of RUN/metrics.jsonl (one JSON object per line; damaged lines skipped; [] without a log)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    with open(path, "rb") as f:
        return [row for _, row in _metric_lines(f) if row is not None]


def keep_metrics(path: Path, last_step: int) -> int:
    """Rewrite the log `path` with its rows up to `last_step` (what a resumed run continues from: later
    rows are those of the interrupted session), atomically; the number of damaged lines dropped (not
    UTF-8, not JSON, not an object with a whole-number step). CheckpointError when `path` is a link."""
    dropped = 0

    def write(out) -> None:
        nonlocal dropped
        for line, row in _metric_lines(log):
            step = row.get("step", 0) if row is not None else None
            if not isinstance(step, int):
                dropped += 1
            elif step <= last_step:
                out.write(line + b"\n")

    with os.fdopen(open_run_file(path, os.O_RDONLY), "rb") as log:
        write_atomic(path, write)
    return dropped


def _metric_lines(file) -> Iterator[tuple[bytes, dict | None]]:
    """Each non-blank line of an open log (binary), and its row: the JSON object it holds, else None."""
    for raw in file:
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested beyond the parser's depth
            row = None
        yield line, row if isinstance(row, dict) else None


def open_run_file(path: Path, flags: int) -> int:
    """os.open of a file of a run folder that refuses a symbolic link, so that nothing is written (or read
    back) through a link out of the folder; CheckpointError saying so."""
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
    raise CheckpointError(f"{path} is a symbolic link, and babi-dnc never writes a run's files through one: "
                          "replace it with the file itself (or delete it) and run the command again.")


def refuse_linked_folders(path: Path) -> None:
    """CheckpointError when the run's checkpoints/ or tb/ is a symbolic link: checkpoints and TensorBoard
    events would be written out of the run folder through it."""
    for name in ("checkpoints", "tb"):
        if (path / name).is_symlink():
            raise CheckpointError(f"{path / name} is a symbolic link, and babi-dnc never writes a run's files "
                                  "through one: replace it with the folder itself (or delete it) and run again.")


def _ours(name: str) -> bool:
    """A file a training writes into its folder (or a temporary of one)."""
    return name in RUN_FILES or name == LOCK or any(name.startswith(f".{f}.tmp-") for f in (CONFIG, VOCAB, METRICS))


def holds_run(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in MARKERS)


def _trained(path: Path) -> bool:
    """Something of the run would be lost by starting afresh: a checkpoint, or a logged step."""
    root = checkpoint_dir(path)
    logged = (path / METRICS).is_file() and (path / METRICS).stat().st_size > 0
    return logged or (root.is_dir() and any(root.iterdir()))


def _saved_step(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        step = json.loads((checkpoint_dir(path) / "latest" / "meta.json").read_text()).get("step")
        return f" (trained to step {int(step)})"
    return ""


def start_mode(path: Path, resume: bool = False, restart: bool = False) -> str:
    """How a training starts in `path`: "fresh", "resume" or "restart" (see the module docstring);
    UserError for a folder it may not write or a run it may not overwrite. Reads only."""
    if resume and restart:
        raise UserError("--resume and --restart exclude each other: pass one of them.")
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{path} is a file, not a run folder: choose another --out.")
    if not path.exists():
        return "fresh"
    others = sorted(p.name for p in path.iterdir() if not _ours(p.name))
    if not holds_run(path):
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise CheckpointError(f"{path} holds files that are not a babi-dnc run ({shown}): choose a new or empty "
                                  "--out.")
        return "fresh"
    if restart:
        return "restart"
    if resume:
        return "resume" if _trained(path) else "fresh"
    raise CheckpointError(f"{path} already holds a run{_saved_step(path)}: pass --resume to continue it, --restart to "
                          "delete it and start over, or choose another --out.")


def check_seeds_folder(path: Path, restart: bool = False, keep: int = 0) -> None:
    """The folder of `--seeds K` runs (OUT/seed-N) must not exist yet or hold only seed-N folders; with
    restart, the runs of seed-`keep` and above (left by an earlier, larger --seeds) are deleted too."""
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{path} is a file, not a folder for seed-N runs: choose another --out.")
    if not path.is_dir():
        return
    others = sorted(p.name for p in path.iterdir() if not re.fullmatch(r"seed-\d+", p.name))
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise CheckpointError(f"{path} holds other files than seed-N runs ({shown}): choose a new or empty --out "
                              "for --seeds.")
    for folder in path.iterdir():
        if restart and int(folder.name.split("-")[1]) >= keep and holds_run(folder):
            lock = RunLock(folder)
            lock.acquire()
            try:
                clear_run(folder)
            finally:
                lock.release()


def clear_run(path: Path) -> None:
    """Delete the files of the run in `path` (RUN_FILES); other files stay."""
    for name in RUN_FILES:
        target = path / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def resume_checkpoint(path: Path) -> tuple[Checkpoint, str | None]:
    """The newest checkpoint of `path` that loads (latest, else best) and a note when it is not latest;
    CheckpointError naming what is wrong with each when neither loads."""
    problems: dict[str, str] = {}
    for tag in ("latest", "best"):
        if resolve_checkpoint(path, tag) is None and not (checkpoint_dir(path) / tag).exists():
            problems[tag] = "missing"
            continue
        try:
            checkpoint = load_checkpoint(path, tag)
        except CheckpointError as e:
            problems[tag] = getattr(e, "problem", str(e))
            continue
        note = None
        if tag == "best":
            note = (f"checkpoint 'latest' does not load ({problems['latest']}): resuming from 'best' at step "
                    f"{checkpoint.step}")
        return checkpoint, note
    raise CheckpointError(f"cannot resume {path}: no checkpoint loads (latest: {problems['latest']}; best: "
                          f"{problems['best']}), so restore {checkpoint_dir(path)} or pass --restart to start over.")


def _move_aside(path: Path, tag: str) -> str | None:
    """Rename the unloadable checkpoint folder `tag` to broken-<tag>-<time>, so no save overwrites it."""
    folder = checkpoint_dir(path) / tag
    if not folder.exists():
        return None
    target = folder.with_name(f"broken-{tag}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.rename(folder, target)
    return f"the unloadable checkpoint is kept as {target}"


class RunLock:
    """RUN/.lock: held by the one training that writes RUN (see the module docstring)."""

    def __init__(self, run_dir: Path):
        self.run_dir, self.path = run_dir, run_dir / LOCK
        self.fd: int | None = None

    def acquire(self) -> str | None:
        """Take the lock (making the folder); a note when a dead owner's lock was taken over.
        CheckpointError when another live training holds it or the folder cannot be written."""
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd, owner = self._open_locked()
            _write_owner(fd)
        except OSError as e:
            raise CheckpointError(f"cannot write into {self.run_dir} ({io_reason(e)}): choose an --out where you "
                                  "can write.") from None
        self.fd = fd
        if owner and owner != _me():
            return (f"took over the lock of {self.run_dir} from pid {owner.get('pid')} on {owner.get('host')} "
                    f"(started {owner.get('started')}), which is no longer running")
        return None

    def _open_locked(self) -> tuple[int, dict]:
        """The lock file, opened and locked by this process, and its previous owner ({} if none)."""
        while True:
            fd = open_run_file(self.path, os.O_RDWR | os.O_CREAT)
            locked = _try_flock(fd)
            owner = _read_owner(fd)
            if locked is False or (locked is None and owner and _alive(owner)):
                os.close(fd)
                raise CheckpointError(_busy(self.run_dir, owner, self.path, flock=locked is not None))
            if _same_file(fd, self.path):
                return fd, owner
            os.close(fd)  # the owner removed the file between our open and our lock: try again

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # before the unlock, so that no one locks a file that is gone
        os.close(self.fd)
        self.fd = None


def _try_flock(fd: int) -> bool | None:
    """True: locked; False: another process holds it; None: this file system has no flock."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return None


def _read_owner(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    with contextlib.suppress(ValueError):
        owner = json.loads(os.read(fd, 4096).decode("utf-8", "replace") or "{}")
        return owner if isinstance(owner, dict) else {}
    return {}


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _write_owner(fd: int) -> None:
    owner = {**_me(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv)[:500]}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(owner) + "\n").encode())
    os.fsync(fd)


def _alive(owner: dict) -> bool:
    """Whether the owner may still run: on this host, its pid exists; on another, it cannot be told."""
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(owner.get("pid", -1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _busy(run_dir: Path, owner: dict, lock: Path, flock: bool) -> str:
    who = f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}, since {owner.get('started', '?')}"
    stale = "" if flock else f"; if that process is gone, delete {lock}"
    return f"{run_dir} is in use by another training ({who}): wait for it to end or choose another --out{stale}."


@contextlib.contextmanager
def open_run_folder(path: Path, resume: bool = False, restart: bool = False, main: bool = True,
                    barrier: Callable[[], None] = lambda: None) -> Iterator[tuple[Checkpoint | None, list[str]]]:
    """Own `path` for a training: check the rule, take the lock (process `main` only), delete a restarted
    run, and choose the checkpoint to resume from. Yields (checkpoint or None for a fresh start, notes
    for the user); the lock is released on leaving. `barrier` lets the processes of a distributed run
    wait for process 0 before they read the folder."""
    mode = start_mode(path, resume, restart)
    lock, notes = RunLock(path), []
    try:
        if main:
            notes.append(lock.acquire())
            refuse_linked_folders(path)
            mode = start_mode(path, resume, restart)  # again: another training may have written in between
            if mode == "restart":
                clear_run(path)
                notes.append(f"--restart: deleted the run in {path}, starting afresh")
            elif resume and mode == "fresh":
                notes.append(f"no run to resume in {path}: starting a fresh one")
        barrier()
        checkpoint = None
        if mode == "resume":
            checkpoint, note = resume_checkpoint(path)
            if note and main:
                notes += [note, _move_aside(path, "latest")]
        yield checkpoint, [n for n in notes if n]
    finally:
        lock.release()
