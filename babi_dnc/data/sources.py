"""Where the bAbI files come from (first match wins):

  1. `data_dir`, else the environment variable `BABI_DNC_DATA`: a local `tasks_1-20_v1-2` folder, its
     parent folder, or the original `tasks_1-20_v1-2.tar.gz`;
  2. the Hugging Face Hub: the dataset repo `facebook/babi_qa` keeps the original archive
     `data/tasks_1-20_v1-2.tar.gz`; `huggingface_hub` downloads it once into its cache. A cached archive is
     used without asking the Hub; otherwise one quick request first (none under `HF_HUB_OFFLINE`), so that
     an offline machine is told at once. Archives are verified (readable gzip tar, expected member layout,
     sha256 reported) and read member by member with `tarfile`, never unpacked to disk.

A file or an archive's member larger than MAX_FILE_BYTES (far above any bAbI file) is refused before it is
read, so that a hostile archive (gigabytes of zeros in a few megabytes) cannot fill the memory.
"""

from __future__ import annotations

import errno
import os
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants, get_session, hf_hub_download
from huggingface_hub.errors import LocalEntryNotFoundError

from ..errors import DataError
from ..hashing import sha256_bytes, sha256_file
from .tasks import SETS, SPLITS, TASK_NAMES, task_file

ARCHIVE_ROOT = "tasks_1-20_v1-2"
HUB_REPO = "facebook/babi_qa"
HUB_FILENAME = "data/tasks_1-20_v1-2.tar.gz"
ENV_DATA = "BABI_DNC_DATA"
HUB_CHECK_SECONDS = 5.0  # the first request to the Hub: longer than this, and it counts as unreachable
MAX_FILE_BYTES = 64 << 20  # the largest bAbI v1.2 file has 2.5 MB


def _digest_of_files(file_sha: dict[str, str]) -> str:
    """sha256 of the `sha256sum` listing of the files, sorted by path (bytewise).

    Equals `cd tasks_1-20_v1-2 && sha256sum <the files> | LC_ALL=C sort -k 2 | sha256sum`.
    """
    listing = "".join(f"{file_sha[name]}  {name}\n" for name in sorted(file_sha))
    return sha256_bytes(listing.encode())


_MEMBER = re.compile(r"^(?:\./)?(?:tasks_1-20_v1-2/)?(en|en-10k)/(qa(\d+)_([a-z-]+)_(train|test)\.txt)$")


def _member_file(member_name: str) -> str | None:
    """Archive member name -> "en-10k/qa1_..._train.txt" for the task files we know, else None."""
    m = _MEMBER.match(member_name)
    if not m:
        return None
    set_name, task, name = m.group(1), int(m.group(3)), m.group(4)
    if TASK_NAMES.get(task) != name:
        return None
    return f"{set_name}/{m.group(2)}"


@dataclass
class Source:
    """Where the files come from: kind "local-dir" | "local-tar" | "hub", a path, and (after
    `read_set`) the sha256: of the archive for a tar, or for a folder the sha256 of the sorted
    `sha256sum` listing of the task files used (see `_digest_of_files`)."""

    kind: str
    path: Path
    revision: str | None = None
    sha256: str | None = None

    def describe(self) -> dict:
        d = {"kind": self.kind, "path": str(self.path), "sha256": self.sha256,
             "sha256_of": "archive" if self.kind != "local-dir" else "sha256sum listing of the used files"}
        if self.revision:
            d["revision"] = self.revision
        return d

    def read_set(self, set_name: str) -> dict[str, bytes]:
        """Bytes of every task file of `set_name` that exists, keyed like "en-10k/qa1_..._train.txt"."""
        if self.kind == "local-dir":
            files = {}
            for task in TASK_NAMES:
                for split in SPLITS:
                    name = task_file(set_name, task, split)
                    path = self.path / name
                    if path.is_file():
                        _check_size(path.stat().st_size, path)
                        files[name] = path.read_bytes()
            self.sha256 = _digest_of_files({k: sha256_bytes(v) for k, v in files.items()})
            return files
        self.sha256 = sha256_file(self.path)
        return _read_tar(self.path, set_name)


def _check_size(size: int, path: Path, member: str | None = None) -> None:
    """DataError, before it is read, for a file (or an archive's member) far larger than any bAbI file."""
    if size > MAX_FILE_BYTES:
        what = f"{path}'s member {member}" if member else str(path)
        raise DataError(f"{what} holds {size:,} bytes, far more than any bAbI file (at most {MAX_FILE_BYTES >> 20} MB "
                        f"is read), so it is refused unread: pass the original {ARCHIVE_ROOT} folder or .tar.gz.")


def _read_tar(path: Path, set_name: str) -> dict[str, bytes]:
    """One sequential pass over a .tar.gz: verify it and return the task files of one set."""
    files: dict[str, bytes] = {}
    known = 0
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                if member.isfile():  # before the member is read, or skipped (which unpacks it too)
                    _check_size(member.size, path, member.name)
                name = _member_file(member.name)
                if name is None or not member.isfile():
                    continue
                known += 1
                if name.startswith(set_name + "/"):
                    f = tar.extractfile(member)
                    files[name] = f.read(MAX_FILE_BYTES) if f is not None else b""
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{path} is not a readable tar.gz archive ({type(e).__name__}: {e}), so "
                        "re-download it or pass the unpacked tasks_1-20_v1-2 folder.") from None
    if known == 0:
        raise DataError(f"{path} does not hold bAbI v1.2 task files (expected members like "
                        f"{ARCHIVE_ROOT}/en-10k/qa1_single-supporting-fact_train.txt), so pass the "
                        "original tasks_1-20_v1-2.tar.gz.")
    return files


class _HubUnavailable(Exception):
    """The Hub is not to be asked (offline mode) or does not answer; the message says which."""


def _check_hub() -> None:
    """One quick request to the Hub (no retries): an offline machine is told at once, not after
    huggingface_hub's five retries (about half a minute)."""
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise _HubUnavailable("HF_HUB_OFFLINE is set and it is not in the local cache")
    try:
        get_session().head(constants.ENDPOINT, timeout=HUB_CHECK_SECONDS)
    except Exception as e:  # no network, no name resolution, a timeout: all mean the same here
        raise _HubUnavailable(f"it is not in the local cache and the Hub cannot be reached: {type(e).__name__}") \
            from None


def _hub_archive() -> Source:
    """The original archive on the Hugging Face Hub: from the local cache when it is there, else downloaded
    once the Hub answers a first quick request."""
    where = {"repo_id": HUB_REPO, "repo_type": "dataset", "filename": HUB_FILENAME}
    try:
        try:
            path = Path(hf_hub_download(**where, local_files_only=True))
        except LocalEntryNotFoundError:
            _check_hub()
            path = Path(hf_hub_download(**where))
    except Exception as e:  # offline, network, auth, a moved file: the same advice for all
        text = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        reason = text if isinstance(e, _HubUnavailable) else f"{type(e).__name__}: {text}" if text else type(e).__name__
        raise DataError(f"could not get the bAbI archive {HUB_FILENAME} from the Hugging Face Hub dataset "
                        f"{HUB_REPO} ({reason}), so pass --data-dir PATH or set {ENV_DATA} to a local "
                        f"{ARCHIVE_ROOT} folder or its .tar.gz.") from None
    parts = path.parts
    revision = parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else None
    return Source("hub", path, revision=revision)


def resolve_source(data_dir: str | Path | None = None) -> Source:
    """`data_dir`, else $BABI_DNC_DATA, else the Hub; a folder may be tasks_1-20_v1-2 or its parent."""
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get(ENV_DATA) or None
        if data_dir is None:
            return _hub_archive()
    path = local_data_path(data_dir)
    if path.is_file():
        return Source("local-tar", path.resolve())
    if path.is_dir():
        for root in (path, path / ARCHIVE_ROOT):
            if any((root / s).is_dir() for s in SETS):
                return Source("local-dir", root.resolve())
        for archive in (path / f"{ARCHIVE_ROOT}.tar.gz", path / f"{ARCHIVE_ROOT}.tgz"):
            if archive.is_file():
                return Source("local-tar", archive.resolve())
        raise DataError(f"{path} holds no bAbI data (no en/ or en-10k/ folder, no {ARCHIVE_ROOT} folder "
                        f"or {ARCHIVE_ROOT}.tar.gz), so point --data-dir at the {ARCHIVE_ROOT} folder, "
                        "its parent or the .tar.gz.")
    raise DataError(f"bAbI data path {path} does not exist, so point --data-dir (or {ENV_DATA}) at the "
                    f"{ARCHIVE_ROOT} folder, its parent or the .tar.gz.")


def local_data_path(data_dir: str | Path) -> Path:
    """`data_dir` as an absolute path (~ expanded, links resolved); DataError for a loop of symbolic links,
    which the system would otherwise report as a path that does not exist."""
    path = Path(data_dir).expanduser()
    try:
        path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DataError(f"bAbI data path {path} is a loop of symbolic links, so point --data-dir (or {ENV_DATA}) "
                            f"at the real {ARCHIVE_ROOT} folder, its parent or the .tar.gz.") from None
    return path.resolve()
