"""GPU correctness checks of the DNC memory against the CPU float64 result (run by scripts/gpu_check.sh).

Prints one line per check and writes a JSON summary to the path in argv[1] (if given). Exits non-zero if a
check fails. It imports the library only: the CPU float64 result it compares with is the one the test suite
checks against the independent float64 reference (tests/reference_dnc.py, tests/test_memory.py). Checks:
  1. float64 on CUDA == float64 on CPU from a non-degenerate state, every state field and the reads, 1e-6
  2. float32 on CUDA vs float64 on CPU at paper sizes over 30 steps (max abs difference of the read vectors)
  3. fused backward passes == plain autograd on CUDA (float64)
  4. bf16 autocast DNC at paper sizes: state stays float32, outputs finite and close to float32
  5. torch.compile of the step function == eager (float32, outputs and gradients)
"""

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpu_checklib import Checks, check_device, device_vs_cpu, warm_state  # noqa: E402

from babi_dnc.dnc import DNC  # noqa: E402
from babi_dnc.memory import Memory, MemoryState  # noqa: E402

dev = check_device()
checks = Checks(dev)
report = checks.report


# 1. float64 CUDA vs float64 CPU (the CPU result is the one tests/test_memory.py holds to the reference)
N, W, R, B = 16, 6, 4, 3
gen = torch.Generator().manual_seed(0)
memory = Memory(N, W, R)
worst = device_vs_cpu(memory, warm_state(memory, B, gen), dev, gen)
report("float64 cuda vs float64 cpu, max abs diff", worst, worst < 1e-6)

# 2. float32 CUDA vs float64 CPU at paper sizes
N, W, R, B = 256, 64, 4, 8
memory = Memory(N, W, R)
s64 = memory.initial_state(B, dtype=torch.float64)
s32 = memory.initial_state(B, device=dev)
worst = 0.0
for _ in range(30):
    xi = torch.randn(B, memory.interface_size, generator=gen, dtype=torch.float64)
    r64, s64 = memory(xi, s64)
    r32, s32 = memory(xi.float().to(dev), s32)
    worst = max(worst, float((r32.double().cpu() - r64).abs().max()))
report("float32 cuda vs float64 cpu, paper sizes, 30 steps, read vectors", worst, worst < 1e-3)

# 3. fused vs plain autograd on CUDA
N, W, R, B = 12, 5, 3, 4
init = warm_state(Memory(N, W, R), B, gen)
xis = torch.randn(5, B, Memory(N, W, R).interface_size, generator=gen, dtype=torch.float64)
grads = []
for fused in (True, False):
    m = Memory(N, W, R, fused=fused)
    x = xis.to(dev).requires_grad_(True)
    st = MemoryState(*(t.to(dev).requires_grad_(True) for t in init))
    cur, loss = st, 0
    for t in range(5):
        reads, cur = m(x[t], cur)
        loss = loss + reads.pow(2).sum() + cur.link.sum()
    loss.backward()
    grads.append([x.grad] + [t.grad for t in st])
worst = max(float((a - b).abs().max()) for a, b in zip(*grads))
report("fused vs plain gradients on cuda (float64)", worst, worst < 1e-9)

# 4. bf16 autocast at paper sizes
torch.manual_seed(0)
model = DNC(159, 159, controller_size=256, memory_slots=256, word_size=64, read_heads=4).to(dev)
x = torch.randn(16, 40, 159, device=dev)
with torch.no_grad():
    y32, _ = model(x)
    with torch.autocast(dev.type, dtype=torch.bfloat16):
        y16, st16 = model(x)
dtypes_ok = all(t.dtype == torch.float32 for t in st16.memory)
rel = float((y16.float() - y32).norm() / y32.norm())
report("bf16 autocast: memory state float32", dtypes_ok, dtypes_ok)
report("bf16 autocast vs float32 outputs, relative L2 error", rel, np.isfinite(rel) and rel < 0.05)

# 5. compiled step function vs eager (SKIP_COMPILE=1 skips it: it compiles for a minute or more on a CPU)
def check_compile():
    torch.manual_seed(0)
    model = DNC(40, 40, controller_size=64, memory_slots=32, word_size=16, read_heads=2).to(dev)
    x = torch.randn(8, 12, 40, device=dev)
    y_e, _ = model(x)
    y_e.pow(2).mean().backward()
    g_e = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    t0 = time.perf_counter()
    model.compile_step()  # what `train --compile` uses
    y_c, _ = model(x)
    y_c.pow(2).mean().backward()
    compile_s = time.perf_counter() - t0
    g_c = [p.grad for p in model.parameters()]
    diff = max(float((y_c - y_e).abs().max()), max(float((a - b).abs().max()) for a, b in zip(g_c, g_e)))
    report(f"torch.compile step vs eager, max abs diff (compile took {compile_s:.0f} s)", diff, diff < 1e-4)


if not os.environ.get("SKIP_COMPILE"):
    check_compile()

checks.finish(sys.argv[1] if len(sys.argv) > 1 else None, "all GPU correctness checks passed")
