"""The fused kernels for the temporal link: compiled C++ on a CPU (csrc/link_cpu.cpp, built on first use),
Triton on a GPU (triton_link.py); `link_kernel(tensor)` says which one a step runs.

`memory._FusedLinkRead` calls it for CPU tensors when it is available: the link update and both directional
weightings in one pass over the N x N link matrix per sample, and the whole backward pass in one more. It
computes the same numbers as `link_update` + `directional_weightings` (tests/test_kernels.py checks them
in float64 against those functions). The build uses `torch.utils.cpp_extension` (a C++ compiler and the
Python headers; about 15 s once, then cached under ~/.cache/torch_extensions). Without a compiler, the
memory falls back to the PyTorch implementation with one warning, so nothing depends on the kernel.

Set BABI_DNC_CPU_KERNEL=0 to use the PyTorch implementation without trying the build.

On CUDA tensors the memory runs the Triton kernels of triton_link.py when Triton can be imported (the GPU
builds of PyTorch bring it) and N <= triton_link.MAX_SLOTS; else the PyTorch implementation, with one
warning. Set BABI_DNC_TRITON=0 to use the PyTorch implementation on a GPU.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import time
import warnings
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "csrc" / "link_cpu.cpp"
ENV_SWITCH = "BABI_DNC_CPU_KERNEL"
STALE_LOCK_S = 15 * 60  # a build lock older than this was left by a killed build (one takes under a minute)
TRITON_SWITCH = "BABI_DNC_TRITON"

_lock = threading.Lock()
_state: dict = {"tried": False, "ok": False, "error": None}
_triton: dict = {"tried": False, "ok": False, "error": None, "max_slots": 0}


def _switched_off(name: str) -> bool:
    return os.environ.get(name, "1").strip().lower() in ("0", "false", "no", "off")


def _remove_stale_lock(lock: Path) -> None:
    """torch's extension build waits for its lock file without end; a build killed half-way (a timeout, a
    signal) leaves the file behind, and every later process would hang on it."""
    try:
        if time.time() - lock.stat().st_mtime > STALE_LOCK_S:
            log.warning("removing the stale build lock %s", lock)
            lock.unlink(missing_ok=True)
    except OSError:  # no lock (the usual case), or one that another process has just removed
        pass


def _build_source(build_directory) -> tuple[str, Path]:
    """The extension's name and its source, copied into a build folder named by the source's digest (a
    stale build lock there removed).

    Every checkout and installed copy of this package with the same kernel source then shares one build
    (built once), and one with another source gets its own folder: building from each checkout's own path
    would rewrite the shared build file, and a checkout used after another rebuilt the kernel each time."""
    text = SOURCE.read_bytes()
    name = f"babi_dnc_link_cpu_{hashlib.sha256(text).hexdigest()[:12]}"
    folder = Path(build_directory(name, verbose=False))
    copy = folder / SOURCE.name
    if not copy.is_file() or copy.read_bytes() != text:
        part = folder / f".{SOURCE.name}.{os.getpid()}"
        part.write_bytes(text)
        os.replace(part, copy)  # whole or absent, for a build starting in another process
    _remove_stale_lock(folder / "lock")
    return name, copy


def _build() -> None:
    from torch.utils import cpp_extension  # here: it brings setuptools and the build tooling, for one build

    log.info("building the CPU link kernel (once; cached under ~/.cache/torch_extensions)")
    # OpenMP runs the samples of a batch in parallel (at::parallel_for); macOS's clang has no -fopenmp, and
    # there the samples run one after the other.
    openmp = ["-fopenmp"] if sys.platform.startswith("linux") else []
    name, source = _build_source(cpp_extension._get_build_directory)  # torch's own, not public
    cpp_extension.load(
        name=name,
        sources=[str(source)],
        extra_cflags=["-O3", *openmp],
        extra_ldflags=openmp,
        is_python_module=False,  # the .so registers torch.ops.babi_dnc.* and is loaded into torch
        verbose=False,
    )

    # Shapes for torch.compile, which treats the ops as opaque calls.
    @torch.library.register_fake("babi_dnc::link_forward")
    def _(prev_link, write_weights, prev_precedence, prev_read_weights):
        return torch.empty_like(prev_link), torch.empty_like(prev_read_weights), torch.empty_like(prev_read_weights)

    @torch.library.register_fake("babi_dnc::link_backward")
    def _(g_link, g_forward, g_backward, prev_link, write_weights, prev_precedence, prev_read_weights):
        return (
            torch.empty_like(prev_link),
            torch.empty_like(write_weights),
            torch.empty_like(prev_precedence),
            torch.empty_like(prev_read_weights),
        )


def _first_use(state: dict, switch: str, load, failure: str, advice: str) -> bool:
    """state["ok"]: whether load() succeeded, tried once for all threads (not where `switch` is 0); a
    failure warns once, and the memory runs the PyTorch implementation."""
    if state["tried"]:
        return state["ok"]
    with _lock:
        if not state["tried"]:
            if _switched_off(switch):
                state["error"] = f"turned off by {switch}=0"
            else:
                try:
                    load()
                    state["ok"] = True
                except Exception as e:  # no compiler, no triton, a read-only cache: the eager path still works
                    text = str(e).strip()
                    state["error"] = f"{type(e).__name__}: {text.splitlines()[-1] if text else ''}"
                    warnings.warn(
                        f"{failure} ({state['error']}); the DNC memory uses the PyTorch implementation instead "
                        f"(same numbers, slower). {advice}, or set {switch}=0 to skip the attempt.",
                        stacklevel=3,
                    )
            state["tried"] = True
    return state["ok"]


def cpu_link_kernel() -> bool:
    """Whether the compiled CPU link kernel can be used (builds it on the first call)."""
    return _first_use(_state, ENV_SWITCH, _build, "The CPU link kernel could not be built",
                      "Install a C++ compiler to get it")


def cpu_link_kernel_pending() -> bool:
    """Whether the next CPU memory step first loads (or, on a machine's first run, builds) the CPU kernel."""
    return not _state["tried"] and not _switched_off(ENV_SWITCH)


def status() -> str:
    """One line for logs and `bench`: whether the kernel is in use, and why not."""
    if not _state["tried"]:
        return "not tried yet"
    return "compiled CPU link kernel" if _state["ok"] else f"PyTorch link ({_state['error']})"


def _load_triton() -> None:
    from . import triton_link  # here: only CUDA tensors use it, and importing Triton takes seconds

    _triton["max_slots"] = triton_link.MAX_SLOTS


def triton_link_kernel() -> bool:
    """Whether the Triton link kernels can be used (imports triton_link on the first call; a failure warns
    once). Call it before torch.compile traces a step, so that the import is not traced."""
    return _first_use(_triton, TRITON_SWITCH, _load_triton, "The Triton link kernels are not available",
                      "Install triton (the GPU builds of PyTorch bring it)")


def use_triton(enabled: bool) -> None:
    """Turn the Triton link kernels off (or let them be tried again) in this process, e.g. for a benchmark of
    the PyTorch link; steps already compiled keep the kernel they were traced with."""
    with _lock:
        if enabled:
            _triton.update(tried=False, ok=False, error=None)
        else:
            _triton.update(tried=True, ok=False, error="turned off in this process")


def triton_status() -> str:
    """One line for logs and `bench`: whether the GPU link runs the Triton kernels, and why not."""
    if not _triton["tried"]:
        return "not tried yet"
    return "Triton link kernels" if _triton["ok"] else f"PyTorch link ({_triton['error']})"


def link_kernel(prev_link: torch.Tensor) -> str:
    """Which fused link kernel one step on `prev_link` [B, N, N] runs: "cpu" (C++), "triton" (CUDA tensors),
    or "" (the PyTorch implementation in memory._FusedLinkRead)."""
    if prev_link.device.type == "cpu":
        return "cpu" if cpu_link_kernel() else ""
    if prev_link.is_cuda and triton_link_kernel() and prev_link.shape[-1] <= _triton["max_slots"]:
        return "triton"
    return ""


def link_ops(kind: str):
    """The op namespace of a kernel `link_kernel` named: its link_forward and link_backward."""
    return torch.ops.babi_dnc_gpu if kind == "triton" else torch.ops.babi_dnc


if torch.cuda.is_available():  # import the Triton kernels now, not inside a step torch.compile traces
    triton_link_kernel()
