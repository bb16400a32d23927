"""GPU correctness of the new paths against float64 references (run by scripts/gpu_check.sh).

One line per check; a JSON summary goes to argv[1]. Exits non-zero if a check fails. Checks:
  1. Triton link ops on CUDA (float64, float32) vs the paper's equations in float64 on the CPU, forward and
     backward, at paper sizes (N = 256, R = 4) and at N = 100 (not a power of two); no write = bit-exact link
  2. the memory on CUDA (Triton link) in float64 vs float64 on the CPU from a warmed state, every state field
  3. the memory on CUDA in float32 vs float64 on the CPU, paper sizes: read vectors over 30 steps from the
     zero state, and every state field over 10 steps from a warmed state
(Like every script here it imports the library only; the independent reference is the tests' business.)
  4. whole training steps replayed as CUDA graphs (cuda_graphs.py) vs eager, with padding to the graph's
     shape: logits and parameter gradients, two batches of one shape (inputs copied into the graph), float32
     graphed vs float64 on the CPU
  5. the compiled step (Inductor, around the Triton ops) replayed as CUDA graphs vs the float64 CPU model
SKIP_COMPILE=1 skips check 5.
"""

import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpu_checklib import Checks, check_device, device_vs_cpu, warm_state, worst  # noqa: E402

from babi_dnc import kernels  # noqa: E402
from babi_dnc.cuda_graphs import install_cuda_graphs  # noqa: E402
from babi_dnc.memory import Memory, MemoryState, directional_weightings, link_update  # noqa: E402
from babi_dnc.models import build_model, preset  # noqa: E402

dev = check_device()  # cpu: a dry run of the script (TRITON_INTERPRET=1)
checks = Checks(dev, link=None)
report = checks.report



def guarded(fn):
    """Run one check; an exception is a failed check, not the end of the script."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        report(fn.__name__, f"{type(e).__name__}: {e}", False)


def random_inputs(B, N, R, seed):
    """Link inputs [B, N, N], [B, N], [B, N], [B, R, N] (float64) that respect the memory's invariants."""
    gen = torch.Generator().manual_seed(seed)
    link = torch.rand(B, N, N, generator=gen, dtype=torch.float64) / N
    link.diagonal(dim1=-2, dim2=-1).zero_()
    w = torch.softmax(torch.randn(B, N, generator=gen, dtype=torch.float64), -1) * 0.9  # sums to 0.9
    p = torch.softmax(torch.randn(B, N, generator=gen, dtype=torch.float64), -1) * 0.8
    return [link, w, p, torch.softmax(torch.randn(B, R, N, generator=gen, dtype=torch.float64), -1)]


def warmed_state(memory, B, gen, steps=6) -> MemoryState:
    """warm_state, then uniform random usages (no two alike, so float32 and float64 sort the free list the
    same way)."""
    state = warm_state(memory, B, gen, steps)
    return state._replace(usage=torch.rand(state.usage.shape, generator=gen, dtype=torch.float64))


def check_triton_link():
    assert kernels.triton_link_kernel(), kernels.triton_status()
    ops = torch.ops.babi_dnc_gpu
    gen = torch.Generator().manual_seed(0)
    for B, N, R in [(8, 256, 4), (4, 100, 3)]:
        inputs = [t.requires_grad_() for t in random_inputs(B, N, R, seed=N)]
        new_link = link_update(*inputs[:3])
        want = (new_link, *directional_weightings(new_link, inputs[3]))
        grads = [torch.randn(o.shape, generator=gen, dtype=torch.float64) for o in want]
        want_grads = torch.autograd.grad(want, inputs, grads)
        for dtype, bound in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
            on = [t.detach().to(dev, dtype) for t in inputs]
            g = [t.to(dev, dtype) for t in grads]
            got = ops.link_forward(*on)
            got_grads = ops.link_backward(*g, *on)
            diff = worst([*zip(got, want), *zip(got_grads, want_grads)])
            report(f"triton link {str(dtype)[6:]} B={B} N={N} R={R} vs float64 cpu, fwd+bwd max abs diff", diff,
                   diff < bound)
    link, _, p, rw = (t.to(dev, torch.float32) for t in random_inputs(4, 256, 4, seed=1))
    same = torch.equal(ops.link_forward(link, torch.zeros_like(p), p, rw)[0], link)
    report("triton link: no write leaves the link bit-exact", same, same)


def check_memory_float64():
    N, W, R, B = 16, 6, 4, 3
    gen = torch.Generator().manual_seed(1)
    memory = Memory(N, W, R)
    diff = device_vs_cpu(memory, warmed_state(memory, B, gen), dev, gen)
    report(f"memory float64 {dev.type} (triton link) vs float64 cpu, warmed state, 8 steps, max abs diff", diff,
           diff < 1e-12)


def check_memory_float32():
    """From the zero state (usages all tied) the slots a write picks may differ between float32 and float64
    (the DNC's own discontinuity), so there the read vectors are compared, which do not depend on that; from
    a warmed state, every state field."""
    N, W, R, B = 256, 64, 4, 8
    gen = torch.Generator().manual_seed(2)
    memory = Memory(N, W, R)
    for start in ("zero", "warmed"):
        if start == "zero":
            s64, steps = memory.initial_state(B, dtype=torch.float64), 30
        else:
            s64, steps = warmed_state(memory, B, gen), 10
        s32 = MemoryState(*(t.to(dev, torch.float32) for t in s64))
        fields = ("read_vectors",) if start == "zero" else ("read_vectors", *MemoryState._fields)
        diffs = dict.fromkeys(fields, 0.0)
        for _ in range(steps):
            xi = torch.randn(B, memory.interface_size, generator=gen, dtype=torch.float64)
            r64, s64 = memory(xi, s64)
            r32, s32 = memory(xi.float().to(dev), s32)
            diffs["read_vectors"] = max(diffs["read_vectors"], worst([(r32, r64)]))
            for k in fields[1:]:
                diffs[k] = max(diffs[k], worst([(getattr(s32, k), getattr(s64, k))]))
        for k, v in diffs.items():
            report(f"memory float32 {dev.type} vs float64 cpu, paper sizes, {steps} steps from the {start} state: "
                   f"{k}, max abs diff", v, v < 1e-5)


def _bab_batch(B, T, V, gen, device):
    ids = torch.randint(0, V, (B, T), generator=gen)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=gen)
    mask = torch.arange(T) < lengths.unsqueeze(1)
    targets = torch.randint(0, V, (B, T), generator=gen)
    return ids.to(device), mask.to(device), targets.to(device)


def _step(model, ids, mask, targets):
    """Logits and parameter gradients of one training step (the loss of training: answer positions)."""
    logits, _ = model(ids, mask=mask)
    loss = torch.nn.functional.cross_entropy(logits[mask].float(), targets[mask])
    grads = torch.autograd.grad(loss, [p for p in model.parameters()], allow_unused=True)
    return logits.detach(), [torch.zeros_like(p) if g is None else g for g, p in zip(grads, model.parameters())]


def _graph_check(name, compiled: bool, B=8, V=159):
    config = preset("paper", memory_slots=64, word_size=16)  # the paper's controller, a smaller memory
    torch.manual_seed(0)
    model = build_model(config, V).to(dev).train()
    eager = build_model(config, V).to(dev).train()  # the same weights, eager, no graphs
    eager.load_state_dict(model.state_dict())
    reference = build_model(config, V).double().train()
    reference.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    t0 = time.perf_counter()
    if compiled:
        model.compile_step() if hasattr(model, "compile_step") else model.core.compile_step()
    graphed = install_cuda_graphs(model)
    if graphed is None:
        raise RuntimeError(f"no CUDA graphs on {dev}")
    gen = torch.Generator().manual_seed(3)
    diffs = {"logits": 0.0, "gradients": 0.0, "eager logits": 0.0, "eager gradients": 0.0}
    for T in (37, 40, 70):  # 37 and 40 share the 48-step graph; the batch of 6 rows is padded to 8
        rows = 6 if T == 40 else B
        ids, mask, targets = _bab_batch(rows, T, V, gen, dev)
        logits, grads = _step(model, ids, mask, targets)
        ref_logits, ref_grads = _step(reference, ids.cpu(), mask.cpu(), targets.cpu())
        eager_logits, eager_grads = _step(eager, ids, mask, targets)
        scale = max(float(g.abs().max()) for g in ref_grads)
        wanted = {"": (ref_logits, ref_grads), "eager ": (eager_logits, eager_grads)}
        for kind, (want_logits, want_grads) in wanted.items():
            diffs[kind + "logits"] = max(diffs[kind + "logits"], worst([(logits, want_logits)]))
            diffs[kind + "gradients"] = max(diffs[kind + "gradients"], worst(zip(grads, want_grads)) / scale)
    extra = f" (compile and capture took {time.perf_counter() - t0:.0f} s)" if compiled else ""
    report(f"{name}: graphs used", dict(graphed.stats), graphed.stats["captures"] == 2 and not graphed.failed)
    report(f"{name} float32 vs float64 cpu: logits, max abs diff{extra}", diffs["logits"], diffs["logits"] < 1e-4)
    report(f"{name} float32 vs float64 cpu: gradients, max abs diff / max abs gradient", diffs["gradients"],
           diffs["gradients"] < 1e-4)
    report(f"{name} vs the eager float32 model on cuda: logits, max abs diff", diffs["eager logits"],
           diffs["eager logits"] < 1e-5)
    report(f"{name} vs the eager float32 model on cuda: gradients, max abs diff / max abs gradient",
           diffs["eager gradients"], diffs["eager gradients"] < 1e-5)


def check_graphed_step():
    _graph_check("graphed eager step", compiled=False)


def check_graphed_compiled_step():
    import torch._dynamo

    torch._dynamo.config.suppress_errors = False  # a failed compile is a failed check here
    _graph_check("graphed compiled step", compiled=True)


for check in (check_triton_link, check_memory_float64, check_memory_float32, check_graphed_step):
    guarded(check)
if not os.environ.get("SKIP_COMPILE"):
    guarded(check_graphed_compiled_step)
checks.results["link"] = kernels.triton_status()
checks.finish(sys.argv[1] if len(sys.argv) > 1 else None, "all new-path GPU checks passed")
