"""What the GPU check scripts share: the device under test, the record of checks and a warmed memory state.

    dev, checks = check_device(), Checks()
    checks.report("name", value, ok)      # one PASS/FAIL line, kept for the JSON summary
    checks.finish(argv_path, "all ... passed")   # writes the JSON, prints the verdict, exits 0 or 1
"""

import json
import os
import sys
from pathlib import Path

import torch

from babi_dnc.memory import Memory, MemoryState


def check_device() -> torch.device:
    """CUDA, or CHECK_DEVICE (cpu: a dry run of a script; TRITON_INTERPRET=1 for the Triton kernels)."""
    return torch.device(os.environ.get("CHECK_DEVICE", "cuda"))


class Checks:
    """The results of one script's checks: {name: {"value", "ok"}} plus the device and torch version."""

    def __init__(self, dev: torch.device, **extra):
        name = torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"
        self.results = {"device": name, "torch": torch.__version__, **extra}
        self.failed: list[str] = []

    def report(self, name, value, ok) -> None:
        self.results[name] = {"value": value, "ok": bool(ok)}
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {value}", flush=True)
        if not ok:
            self.failed.append(name)

    def finish(self, path: str | None, passed: str) -> None:
        """Write the JSON summary to `path` (if given), print the verdict, exit 1 if a check failed."""
        if path:
            Path(path).write_text(json.dumps(self.results, indent=2))
        print("FAILED: " + ", ".join(self.failed) if self.failed else passed)
        sys.exit(1 if self.failed else 0)


def warm_state(memory: Memory, B: int, gen: torch.Generator, steps: int = 6) -> MemoryState:
    """A non-degenerate float64 CPU state: the memory after `steps` random writes and reads from zero."""
    state = memory.initial_state(B, dtype=torch.float64)
    for _ in range(steps):
        _, state = memory(torch.randn(B, memory.interface_size, generator=gen, dtype=torch.float64) * 2, state)
    return state


def device_vs_cpu(memory: Memory, state: MemoryState, dev: torch.device, gen: torch.Generator, steps: int = 8) -> float:
    """The largest absolute difference, over `steps` random float64 steps from the CPU state `state`, between
    the memory run on `dev` and on the CPU: every state field and the read vectors."""
    on_dev = MemoryState(*(t.to(dev) for t in state))
    diff = 0.0
    for _ in range(steps):
        xi = torch.randn(state.memory.shape[0], memory.interface_size, generator=gen, dtype=torch.float64) * 2
        reads, on_dev = memory(xi.to(dev), on_dev)
        ref_reads, state = memory(xi, state)
        diff = max(diff, worst([(reads, ref_reads), *zip(on_dev, state, strict=True)]))
    return diff


def worst(pairs) -> float:
    """The largest absolute difference between the tensors of each pair, on the CPU in float64."""
    return max(float((a.detach().double().cpu() - b.detach().double().cpu()).abs().max()) for a, b in pairs)
