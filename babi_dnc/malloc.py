"""Keep freed memory for reuse on Linux/glibc, so that a CPU training step does not page-fault its way
through fresh memory every time.

A DNC step stores one N x N link matrix per time step (8 MB at paper sizes and batch 32, so 800 MB for a
100-step story). With glibc's default settings, blocks of that size are returned to the operating system
when the backward pass frees them (its mmap and trim thresholds adapt upwards, but not far enough), so the
next forward pass touches fresh pages: half a million page faults per training step here, which costs more
time than the link arithmetic itself (`babi-dnc bench`: see BENCHMARKS.md). `retain_freed_memory` sets
glibc's mmap threshold to its maximum (32 MB) and turns off trimming, the same thing the environment
variables MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ would do at start-up. The resident set then
stays at the step's high-water mark, which is the memory the step needs anyway. PyTorch's own tuning guide
gives the same advice in the form of jemalloc or tcmalloc.

`fit` and `babi-dnc bench` call it for CPU runs. Set BABI_DNC_MALLOC=default to leave glibc as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's largest on 64-bit systems
ENV_SWITCH = "BABI_DNC_MALLOC"


@functools.cache  # once per process
def retain_freed_memory() -> bool:
    """Tell glibc to keep freed blocks up to 32 MB for reuse. False where it does not apply (not Linux, not
    glibc, or turned off with BABI_DNC_MALLOC=default)."""
    if not sys.platform.startswith("linux") or os.environ.get(ENV_SWITCH, "").strip().lower() == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
