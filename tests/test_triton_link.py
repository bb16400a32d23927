"""The Triton link kernels (babi_dnc/triton_link.py) on CPU tensors through Triton's interpreter, against the
paper's equations in memory.py (float64 and float32, forward and backward, padded and unpadded)."""

import os
import sys
import warnings

import pytest
import torch

from babi_dnc import kernels
from babi_dnc.memory import Memory, MemoryState, _FusedLinkRead

from .test_kernels import autograd_backward, random_inputs, reference
from .test_memory import random_state

_interpret = os.environ.get("TRITON_INTERPRET")
os.environ["TRITON_INTERPRET"] = "1"  # read when the kernels are defined: they then run on CPU tensors
try:
    from babi_dnc import triton_link
except ImportError:  # no triton here (e.g. macOS); CI on Linux installs it with the dev extra
    triton_link = None
finally:  # the other test files see the environment they had
    if _interpret is None:
        del os.environ["TRITON_INTERPRET"]
    else:
        os.environ["TRITON_INTERPRET"] = _interpret

# Where CUDA is, kernels.py imported triton_link before this file could ask for the interpreter: the kernels
# are then GPU kernels, which scripts/gpu_kernels_check.py checks.
interpreted = triton_link is not None and type(triton_link._link_forward_kernel).__name__ == "InterpretedFunction"
needs_triton = pytest.mark.skipif(not interpreted, reason="no triton, or its kernels are built for the GPU")


@pytest.fixture(autouse=True)
def interpreter(monkeypatch):
    """Triton also reads TRITON_INTERPRET when a kernel runs."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def assert_all_close(got, want, names, **tolerance):
    for name, g, w in zip(names, got, want, strict=True):
        torch.testing.assert_close(g, w, msg=name, **tolerance)


OUTPUTS = ("link", "forward", "backward")
GRADS = ("link", "write_weights", "precedence", "read_weights")
# (B, N, R, block_rows): one row block; several with a partial last one (N = 7, blocks of 2); N a power
# of two in blocks of 4; the paper's N and R in the default blocks (16 rows of 256)
SIZES = [(3, 7, 2, None), (2, 7, 3, 2), (2, 16, 1, 4), (2, 256, 4, None)]


@needs_triton
def test_forward_by_hand():
    """N = 2: L = [[0, .25 * .2], [(1 - .5 - .25) * .5 + .5 * .5, 0]] with w = (.25, .5), p = (.5, .2)."""
    link = torch.tensor([[[0.0, 0.0], [0.5, 0.0]]], dtype=torch.float64)
    w = torch.tensor([[0.25, 0.5]], dtype=torch.float64)
    p = torch.tensor([[0.5, 0.2]], dtype=torch.float64)
    rw = torch.tensor([[[1.0, 0.0]]], dtype=torch.float64)  # read head on slot 0
    new_link, forward, backward = torch.ops.babi_dnc_gpu.link_forward(link, w, p, rw)
    torch.testing.assert_close(new_link, torch.tensor([[[0.0, 0.05], [0.375, 0.0]]], dtype=torch.float64))
    torch.testing.assert_close(forward, torch.tensor([[[0.0, 0.375]]], dtype=torch.float64))  # column 0 of L
    torch.testing.assert_close(backward, torch.tensor([[[0.0, 0.05]]], dtype=torch.float64))  # row 0 of L


@needs_triton
@pytest.mark.parametrize("B,N,R,block_rows", SIZES)
def test_forward_matches_the_equations(B, N, R, block_rows):
    inputs = random_inputs(B=B, N=N, R=R, seed=N + R)
    got = triton_link.link_forward_impl(*inputs, block_rows=block_rows)
    assert_all_close(got, reference(*inputs), OUTPUTS, atol=1e-15, rtol=1e-13)
    assert all(g.is_contiguous() for g in got)  # as the fake implementation tells torch.compile


@needs_triton
@pytest.mark.parametrize("with_link_grad", [True, False])
@pytest.mark.parametrize("B,N,R,block_rows", SIZES)
def test_backward_matches_autograd_through_the_equations(B, N, R, block_rows, with_link_grad):
    inputs = [t.requires_grad_() for t in random_inputs(B=B, N=N, R=R, seed=10 + N + R)]
    g_link, g_forward, g_backward, want = autograd_backward(inputs, with_link_grad)
    got = triton_link.link_backward_impl(g_link, g_forward, g_backward, *[t.detach() for t in inputs],
                                         block_rows=block_rows)
    assert_all_close(got, want, GRADS, atol=1e-14, rtol=1e-12)
    assert all(g.is_contiguous() for g in got)  # as the fake implementation tells torch.compile


@needs_triton
def test_float32_agrees_with_float64():
    inputs = random_inputs(B=2, N=64, R=4, seed=7)
    gen = torch.Generator().manual_seed(6)
    grads = [torch.randn(t.shape, generator=gen, dtype=t.dtype) for t in reference(*inputs)]
    want = (*torch.ops.babi_dnc_gpu.link_forward(*inputs), *torch.ops.babi_dnc_gpu.link_backward(*grads, *inputs))
    as32 = [t.float() for t in (*grads, *inputs)]
    got = (*torch.ops.babi_dnc_gpu.link_forward(*as32[3:]), *torch.ops.babi_dnc_gpu.link_backward(*as32))
    assert all(g.dtype == torch.float32 for g in got)
    assert_all_close([g.double() for g in got], want, OUTPUTS + GRADS, atol=1e-5, rtol=1e-5)


@needs_triton
def test_no_write_leaves_the_link_bit_exact():
    """Padding gates the write weighting to 0; the link must then come out unchanged, bit for bit."""
    link, _, p, rw = random_inputs(dtype=torch.float32, seed=4)
    new_link, *_ = torch.ops.babi_dnc_gpu.link_forward(link, torch.zeros_like(p), p, rw)
    assert torch.equal(new_link, link)


@pytest.fixture
def triton_link_path(monkeypatch):
    """The memory's link runs the Triton kernels on CPU tensors (the interpreter) instead of the C++ one."""
    if not interpreted:
        pytest.skip("no triton, or its kernels are built for the GPU")
    monkeypatch.setattr(kernels, "link_kernel", lambda prev_link: "triton")


def test_gradcheck_of_the_fused_function(triton_link_path):
    inputs = [t.requires_grad_() for t in random_inputs(B=1, N=4, R=2, seed=3)]
    assert torch.autograd.gradcheck(_FusedLinkRead.apply, inputs)


def _run_memory(memory, init, xis, keep):
    """Four steps from `init`; returns the read vectors and final state, and the gradients of a loss on both
    with respect to the interface vectors and the initial state."""
    x = xis.clone().requires_grad_(True)
    state = MemoryState(*(t.clone().requires_grad_(True) for t in init))
    current, loss, reads = state, 0, []
    for t in range(x.shape[0]):
        r, current = memory(x[t], current, keep=None if keep is None else keep[t])
        reads.append(r)
        loss = loss + r.pow(2).sum() + current.link.pow(2).sum() + current.precedence.sum()
    grads = torch.autograd.grad(loss, [x, *state])
    return [*reads, *current], grads


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("padded", [False, True])
def test_memory_steps_agree_with_the_plain_autograd_path(dtype, tolerance, padded, triton_link_path):
    """Whole memory steps (forward and backward) through the Triton link against the unfused functions."""
    B, N, W, R = 3, 12, 5, 3
    gen = torch.Generator().manual_seed(11)
    init = MemoryState(*(t.to(dtype) for t in random_state(B, N, W, R, gen)))
    xis = torch.randn(4, B, Memory(N, W, R).interface_size, generator=gen, dtype=torch.float64).to(dtype)
    keep = None
    if padded:  # sample 1 ends after two steps, sample 2 after three
        keep = torch.tensor([[True, True, True], [True, True, True], [True, False, True], [True, False, False]])
    fused_out, fused_grads = _run_memory(Memory(N, W, R, fused=True), init, xis, keep)
    plain_out, plain_grads = _run_memory(Memory(N, W, R, fused=False), init, xis, keep)
    for a, b in zip((*fused_out, *fused_grads), (*plain_out, *plain_grads), strict=True):
        torch.testing.assert_close(a, b, atol=tolerance, rtol=tolerance)
    if padded:  # a padded sample's link is the one it had when its story ended, bit for bit
        step2 = _run_memory(Memory(N, W, R, fused=True), init, xis[:2], keep[:2])[0]
        assert torch.equal(fused_out[2 + 4][1], step2[2 + 2][1])  # outputs: 4 (or 2) reads, then the state


def test_the_compiled_step_traces_the_ops_without_graph_breaks(triton_link_path):
    """torch.compile sees the custom ops (their fake implementations give the shapes) inside the memory's
    autograd function; aot_eager traces forward and backward as Inductor would, without compiling C++."""
    B, N, W, R = 2, 8, 4, 2
    memory = Memory(N, W, R)
    gen = torch.Generator().manual_seed(2)
    state = MemoryState(*random_state(B, N, W, R, gen))
    xi = torch.randn(B, memory.interface_size, generator=gen, dtype=torch.float64, requires_grad=True)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(memory)(xi, state)
    assert explained.graph_break_count == 0, explained.break_reasons
    compiled = torch.compile(memory, backend="aot_eager", fullgraph=True)
    reads, new_state = compiled(xi, state)
    eager_reads, eager_state = memory(xi, state)
    torch.testing.assert_close(reads, eager_reads, atol=1e-14, rtol=1e-12)
    torch.testing.assert_close(new_state.link, eager_state.link, atol=1e-14, rtol=1e-12)
    (g,) = torch.autograd.grad(reads.sum() + new_state.link.sum(), xi)
    (g_eager,) = torch.autograd.grad(eager_reads.sum() + eager_state.link.sum(), xi)
    torch.testing.assert_close(g, g_eager, atol=1e-13, rtol=1e-11)
    torch._dynamo.reset()


def test_cpu_tensors_never_take_the_triton_path():
    """kernels.link_kernel: the C++ kernel or PyTorch on a CPU, whatever Triton can do."""
    assert kernels.link_kernel(torch.zeros(1, 4, 4)) in ("cpu", "")


def test_a_missing_triton_warns_once_and_falls_back(monkeypatch):
    import babi_dnc

    monkeypatch.setattr(kernels, "_triton", {"tried": False, "ok": False, "error": None, "max_slots": 0})
    monkeypatch.delenv(kernels.TRITON_SWITCH, raising=False)
    monkeypatch.delattr(babi_dnc, "triton_link", raising=False)
    monkeypatch.setitem(sys.modules, "babi_dnc.triton_link", None)  # its import fails, as without triton
    with pytest.warns(UserWarning, match="Triton link kernels are not available"):
        assert kernels.triton_link_kernel() is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernels.triton_link_kernel() is False  # no second attempt, no second warning
    assert kernels.triton_status().startswith("PyTorch link (ModuleNotFoundError")


def test_the_switch_turns_triton_off_without_a_warning(monkeypatch):
    monkeypatch.setattr(kernels, "_triton", {"tried": False, "ok": False, "error": None, "max_slots": 0})
    monkeypatch.setenv(kernels.TRITON_SWITCH, "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernels.triton_link_kernel() is False
    assert "BABI_DNC_TRITON=0" in kernels.triton_status()


def test_use_triton_turns_the_kernels_off_and_on(monkeypatch):
    monkeypatch.setattr(kernels, "_triton", {"tried": True, "ok": True, "error": None, "max_slots": 8192})
    kernels.use_triton(False)
    assert kernels.triton_link_kernel() is False and "turned off" in kernels.triton_status()
    kernels.use_triton(True)
    assert kernels.triton_status() == "not tried yet"
