"""Provenance: what produced the numbers (runs, data checksums, commit, versions, device, date, command)."""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

import babi_dnc

from ..aggregate import Comparison


def git_commit(root: str | Path | None = None) -> str:
    """The babi-dnc git commit (with " + local changes" if the tracked files differ), else "unknown"."""
    root = Path(root) if root else Path(babi_dnc.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + (" + local changes" if dirty else "")) if commit else "unknown"


def device_name(device: str) -> str:
    """"cpu (model name, N threads)" or "cuda:0 (GPU name)"."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{device} ({cpu}, {torch.get_num_threads()} threads)"


def provenance(comparison: Comparison, command: str | None = None) -> dict:
    """What produced the numbers: runs (directory, checkpoint, step, seed, config), data sources and
    checksums, the babi-dnc commit, versions, device, date and the command."""
    sources = []
    for r in comparison.results:
        if r.data_source not in sources:
            sources.append(r.data_source)
    devices = sorted({r.device for r in comparison.results})
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "split": comparison.split,
        "tasks": comparison.tasks,
        "babi_dnc_commit": git_commit(),
        "babi_dnc_version": getattr(babi_dnc, "__version__", None) or _package_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "host": platform.node(),
        "device": ", ".join(device_name(d) for d in devices),
        "data": sources,
        "runs": [{
            "run": r.label, "run_dir": str(r.run_dir.resolve()), "model": r.model_kind, "seed": r.seed,
            "checkpoint": r.checkpoint, "step": r.step, "data": r.config.get("data", {}), "notes": r.notes,
            "config": r.config,
        } for r in comparison.results],
    }


def _package_version() -> str | None:
    try:
        return version("babi-dnc")
    except PackageNotFoundError:
        return None


def provenance_blocks(prov: dict) -> list:
    """Provenance as a list and the runs' configs."""
    items = [f"date: {prov['date']}", f"babi-dnc commit: `{prov['babi_dnc_commit']}`"
             + (f" (version {prov['babi_dnc_version']})" if prov.get("babi_dnc_version") else ""),
             f"python {prov['python']}, torch {prov['torch']}, host {prov['host']}",
             f"device: {prov['device']}", f"split: {prov['split']}, tasks {', '.join(map(str, prov['tasks']))}"]
    if prov.get("command"):
        items.append(f"command: `{prov['command']}`")
    for d in prov["data"]:
        items.append(f"data: {d.get('kind')} `{d.get('path')}`, sha256 ({d.get('sha256_of', 'archive')}) "
                     f"`{d.get('sha256')}`" + (f", revision {d['revision']}" if d.get("revision") else ""))
    for r in prov["runs"]:
        data = r["data"]
        train = r["config"].get("train", {})
        items.append(f"run `{r['run_dir']}`: {r['model']}, seed {r['seed']}, checkpoint {r['checkpoint']} at step "
                     f"{r['step']:,}, trained on {data.get('set_name')} tasks {data.get('tasks')} "
                     f"({train.get('optimizer')} lr {train.get('lr')}, batch {train.get('batch_size')}, device "
                     f"{train.get('device')})"
                     + (f" (notes: {' '.join(r['notes'])})" if r["notes"] else ""))
    configs = {r["run"]: r["config"] for r in prov["runs"]}
    return [("list", items), ("details", "run configurations (config.json)",
                              [("pre", json.dumps(configs, indent=2, default=str))])]

