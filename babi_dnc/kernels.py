"""The compiled CPU kernel for the temporal link (csrc/link_cpu.cpp), built on first use.

`memory._FusedLinkRead` calls it for CPU tensors when it is available: the link update and both directional
weightings in one pass over the N x N link matrix per sample, and the whole backward pass in one more. It
computes the same numbers as `link_update` + `directional_weightings` (tests/test_kernels.py checks them
in float64 against those functions). The build uses `torch.utils.cpp_extension` (a C++ compiler and the
Python headers; about 15 s once, then cached under ~/.cache/torch_extensions). Without a compiler, the
memory falls back to the PyTorch implementation with one warning, so nothing depends on the kernel.

Set BABI_DNC_CPU_KERNEL=0 to use the PyTorch implementation without trying the build.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "csrc" / "link_cpu.cpp"
ENV_SWITCH = "BABI_DNC_CPU_KERNEL"

_lock = threading.Lock()
_state: dict = {"tried": False, "ok": False, "error": None}


def _build() -> None:
    from torch.utils import cpp_extension

    log.info("building the CPU link kernel (once; cached under ~/.cache/torch_extensions)")
    # OpenMP runs the samples of a batch in parallel (at::parallel_for); macOS's clang has no -fopenmp, and
    # there the samples run one after the other.
    openmp = ["-fopenmp"] if sys.platform.startswith("linux") else []
    cpp_extension.load(
        name="babi_dnc_link_cpu",
        sources=[str(SOURCE)],
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


def cpu_link_kernel() -> bool:
    """Whether the compiled CPU link kernel can be used (builds it on the first call)."""
    if _state["tried"]:
        return _state["ok"]
    with _lock:
        if not _state["tried"]:
            if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
                _state["error"] = f"turned off by {ENV_SWITCH}=0"
            else:
                try:
                    _build()
                    _state["ok"] = True
                except Exception as e:  # no compiler, no headers, a read-only cache: the eager path still works
                    _state["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
                    warnings.warn(
                        f"The CPU link kernel could not be built ({_state['error']}); the DNC memory uses the "
                        f"PyTorch implementation instead (same numbers, slower). Install a C++ compiler to get "
                        f"it, or set {ENV_SWITCH}=0 to skip the attempt.",
                        stacklevel=2,
                    )
            _state["tried"] = True
    return _state["ok"]


def status() -> str:
    """One line for logs and `bench`: whether the kernel is in use, and why not."""
    if not _state["tried"]:
        return "not tried yet"
    return "compiled CPU link kernel" if _state["ok"] else f"PyTorch link ({_state['error']})"
