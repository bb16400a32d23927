"""Tests of babi_dnc.memory: hand-computed values per mechanism, parity with an independent float64
implementation of the paper, invariants over random rollouts, gradients and batch independence."""

import math

import numpy as np
import pytest
import torch

from babi_dnc import memory as mem
from babi_dnc.memory import Memory, MemoryState

from . import reference_dnc

T = torch.tensor


def close(a, b, tol=1e-6):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                               atol=tol, rtol=0)


# ------------------------------------------------------------------------------- hand-computed values


def test_interface_size_matches_contract():
    assert mem.interface_size(word_size=64, num_reads=4) == 4 * 64 + 3 * 64 + 5 * 4 + 3
    assert Memory(16, 5, 3).interface_size == 3 * 5 + 15 + 15 + 3


def test_split_interface_order_and_activations():
    W, R = 2, 2
    xi = torch.arange(mem.interface_size(W, R), dtype=torch.float64).unsqueeze(0) / 10
    p = mem.split_interface(xi, W, R)
    close(p.read_keys, [[[0.0, 0.1], [0.2, 0.3]]])
    close(p.read_strengths, [[1 + math.log1p(math.exp(0.4)), 1 + math.log1p(math.exp(0.5))]])
    close(p.write_key, [[0.6, 0.7]])
    close(p.write_strength, [1 + math.log1p(math.exp(0.8))])
    close(p.erase_vector, torch.sigmoid(T([[0.9, 1.0]], dtype=torch.float64)))
    close(p.write_vector, [[1.1, 1.2]])
    close(p.free_gates, torch.sigmoid(T([[1.3, 1.4]], dtype=torch.float64)))
    close(p.allocation_gate, torch.sigmoid(T([1.5], dtype=torch.float64)))
    close(p.write_gate, torch.sigmoid(T([1.6], dtype=torch.float64)))
    close(p.read_modes, torch.softmax(T([[[1.7, 1.8, 1.9], [2.0, 2.1, 2.2]]], dtype=torch.float64), -1))


def test_oneplus_is_at_least_one():
    x = T([-50.0, 0.0, 3.0])
    close(mem.oneplus(x), [1.0, 1 + math.log(2), 1 + math.log1p(math.exp(3.0))])


def test_cosine_similarity_with_epsilon():
    M = T([[[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]], dtype=torch.float64)
    k = T([[[3.0, 4.0]]], dtype=torch.float64)
    s = mem.cosine_similarity(M, k)
    kn = math.sqrt(25 + 1e-6)
    close(s, [[[3 / (kn * math.sqrt(1 + 1e-6)), 8 / (kn * math.sqrt(4 + 1e-6)), 0.0]]])


def test_content_weighting_is_a_sharpened_softmax():
    M = T([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    k = T([[[1.0, 0.0]]], dtype=torch.float64)
    w = mem.content_weighting(M, k, T([[2.0]], dtype=torch.float64))
    d = 1 / math.sqrt((1 + 1e-6) * (1 + 1e-6))
    e1, e0 = math.exp(2 * d), 1.0
    close(w, [[[e1 / (e1 + e0), e0 / (e1 + e0)]]])


def test_retention_and_usage():
    free = T([[0.5, 1.0]])
    prev_reads = T([[[0.2, 0.8, 0.0], [0.0, 0.5, 0.5]]])
    psi = mem.retention(free, prev_reads)
    close(psi, [[(1 - 0.1) * 1.0, (1 - 0.4) * (1 - 0.5), 1.0 * (1 - 0.5)]])
    u = mem.usage_update(T([[0.5, 0.0, 1.0]]), T([[0.5, 1.0, 0.0]]), psi)
    close(u, [[(0.5 + 0.5 - 0.25) * 0.9, 1.0 * 0.3, 1.0 * 0.5]])


def test_allocation_of_the_issue_example():
    close(mem.allocation_weighting(T([[0.2, 0.4, 0.5]])), [[0.8, 0.12, 0.04]])


def test_allocation_sorts_usage_and_breaks_ties_by_lower_index():
    # unsorted usage: slot 2 is the least used, then slot 0
    close(mem.allocation_weighting(T([[0.4, 0.5, 0.2]])), [[0.12, 0.04, 0.8]])
    # ties: two free slots -> the lower index gets everything, the other nothing (usage 0 multiplies)
    close(mem.allocation_weighting(T([[0.0, 0.0, 1.0]])), [[1.0, 0.0, 0.0]])
    close(mem.allocation_weighting(T([[0.5, 0.5]])), [[0.5, 0.25]])


def test_exclusive_cumprod():
    close(mem.exclusive_cumprod(T([[2.0, 3.0, 4.0]])), [[1.0, 2.0, 6.0]])


def test_write_weighting():
    c, a = T([[0.1, 0.9]]), T([[1.0, 0.0]])
    close(mem.write_weighting(c, a, T([0.25]), T([0.5])), [[0.5 * (0.25 + 0.75 * 0.1), 0.5 * 0.75 * 0.9]])


def test_erase_and_write():
    M = T([[[1.0, 2.0], [3.0, 4.0]]])
    out = mem.erase_and_write(M, T([[1.0, 0.5]]), T([[1.0, 0.0]]), T([[10.0, 20.0]]))
    close(out, [[[0 + 10, 2 + 20], [3 * 0.5 + 5, 4 + 10]]])


def test_link_and_precedence():
    L0 = T([[[0.0, 0.5, 0.0], [0.2, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    p0 = T([[0.1, 0.2, 0.3]])
    w = T([[0.0, 0.5, 0.25]])
    L = mem.link_update(L0, w, p0)
    expected = torch.zeros(3, 3)
    for i in range(3):
        for j in range(3):
            if i != j:
                expected[i, j] = (1 - w[0, i] - w[0, j]) * L0[0, i, j] + w[0, i] * p0[0, j]
    close(L[0], expected)
    assert L[0, 1, 0] == pytest.approx(0.5 * 0.2 + 0.5 * 0.1)
    close(mem.precedence_update(p0, w), [[0.25 * 0.1, 0.25 * 0.2 + 0.5, 0.25 * 0.3 + 0.25]])


def test_directional_weightings_follow_the_link_both_ways():
    # slot 0 was written, then slot 1, then slot 2: L[1,0] = L[2,1] = 1
    L = T([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    prev_read = T([[[0.0, 1.0, 0.0]]])  # reading slot 1
    fwd, bwd = mem.directional_weightings(L, prev_read)
    close(fwd, [[[0.0, 0.0, 1.0]]])  # forward: the slot written after -> 2
    close(bwd, [[[1.0, 0.0, 0.0]]])  # backward: the slot written before -> 0


def test_read_weighting_mixes_modes_in_paper_order():
    b, c, f = T([[[1.0, 0.0]]]), T([[[0.0, 1.0]]]), T([[[0.5, 0.5]]])
    modes = T([[[0.2, 0.3, 0.5]]])  # backward, content, forward
    close(mem.read_weighting(b, c, f, modes), [[[0.2 + 0.25, 0.3 + 0.25]]])


def test_read_memory():
    M = T([[[1.0, 2.0], [3.0, 4.0]]])
    close(mem.read_memory(M, T([[[0.25, 0.75]]])), [[[0.25 + 2.25, 0.5 + 3.0]]])


# --------------------------------------------------------------------- parity with the float64 reference


def random_state(B, N, W, R, gen) -> MemoryState:
    """A random non-degenerate state that respects the memory's invariants."""
    def r(*s):
        return torch.rand(*s, generator=gen, dtype=torch.float64)
    read_w = torch.softmax(3 * torch.randn(B, R, N, generator=gen, dtype=torch.float64), -1) * (0.5 + 0.5 * r(B, R, 1))
    write_w = torch.softmax(3 * torch.randn(B, N, generator=gen, dtype=torch.float64), -1) * (0.5 + 0.5 * r(B, 1))
    link = r(B, N, N) * (1 - torch.eye(N, dtype=torch.float64))
    link = link / (link.sum(-1, keepdim=True) + link.sum(-2, keepdim=True)) * 0.9
    precedence = torch.softmax(torch.randn(B, N, generator=gen, dtype=torch.float64), -1) * 0.8
    return MemoryState(
        memory=torch.randn(B, N, W, generator=gen, dtype=torch.float64),
        usage=r(B, N),
        link=link,
        precedence=precedence,
        read_weights=read_w,
        write_weights=write_w,
    )


def to_numpy_state(state: MemoryState, b: int) -> dict:
    return {k: getattr(state, k)[b].numpy().copy() for k in MemoryState._fields}


@pytest.mark.parametrize("N,W,R", [(8, 4, 2), (5, 3, 1), (16, 6, 4)])
def test_parity_with_float64_reference_step_after_step(N, W, R):
    gen = torch.Generator().manual_seed(N * 100 + W * 10 + R)
    B, steps = 3, 6
    memory = Memory(N, W, R)
    state = random_state(B, N, W, R, gen)
    ref = [to_numpy_state(state, b) for b in range(B)]
    for _ in range(steps):
        xi = torch.randn(B, memory.interface_size, generator=gen, dtype=torch.float64) * 2
        reads, state = memory(xi, state)
        for b in range(B):
            ref_reads, ref[b], _ = reference_dnc.step(xi[b].numpy(), ref[b], N, W, R)
            np.testing.assert_allclose(reads[b].numpy(), ref_reads, atol=1e-6, rtol=0)
            for field in MemoryState._fields:
                np.testing.assert_allclose(getattr(state, field)[b].numpy(), ref[b][field], atol=1e-6, rtol=0,
                                           err_msg=field)


def test_parity_from_the_all_zero_initial_state():
    N, W, R, B = 6, 4, 3, 2
    gen = torch.Generator().manual_seed(7)
    memory = Memory(N, W, R)
    state = memory.initial_state(B, dtype=torch.float64)
    assert all(torch.count_nonzero(t) == 0 for t in state)
    ref = [to_numpy_state(state, b) for b in range(B)]
    for _ in range(4):
        xi = torch.randn(B, memory.interface_size, generator=gen, dtype=torch.float64)
        reads, state = memory(xi, state)
        for b in range(B):
            ref_reads, ref[b], _ = reference_dnc.step(xi[b].numpy(), ref[b], N, W, R)
            np.testing.assert_allclose(reads[b].numpy(), ref_reads, atol=1e-6, rtol=0)


def test_float32_agrees_with_float64():
    N, W, R, B = 10, 5, 2, 4
    gen = torch.Generator().manual_seed(3)
    memory = Memory(N, W, R)
    s64 = random_state(B, N, W, R, gen)
    s32 = MemoryState(*(t.float() for t in s64))
    for _ in range(5):
        xi = torch.randn(B, memory.interface_size, generator=gen, dtype=torch.float64)
        r64, s64 = memory(xi, s64)
        r32, s32 = memory(xi.float(), s32)
        assert r32.dtype == torch.float32
        close(r32, r64, tol=1e-4)


def test_trace_records_the_step():
    memory = Memory(4, 3, 2)
    state = memory.initial_state(2)
    trace = {}
    reads, new = memory(torch.randn(2, memory.interface_size), state, trace)
    close(trace["write_weights"], new.write_weights)
    close(trace["read_weights"], new.read_weights)
    assert trace["read_modes"].shape == (2, 2, 3)
    assert trace["allocation"].shape == (2, 4)


# ------------------------------------------------------------------------------------------ invariants


def test_invariants_over_random_rollouts():
    N, W, R, B = 12, 4, 3, 8
    gen = torch.Generator().manual_seed(11)
    memory = Memory(N, W, R)
    state = memory.initial_state(B, dtype=torch.float64)
    for _ in range(40):
        xi = torch.randn(B, memory.interface_size, generator=gen, dtype=torch.float64) * 3
        _, state = memory(xi, state)
        tol = 1e-9
        assert (state.write_weights >= -tol).all() and (state.write_weights.sum(-1) <= 1 + tol).all()
        assert (state.read_weights >= -tol).all() and (state.read_weights.sum(-1) <= 1 + tol).all()
        assert (state.usage >= -tol).all() and (state.usage <= 1 + tol).all()
        assert (state.link.diagonal(dim1=-2, dim2=-1) == 0).all()
        assert (state.link >= -tol).all() and (state.link <= 1 + tol).all()
        assert (state.link.sum(-1) <= 1 + tol).all() and (state.link.sum(-2) <= 1 + tol).all()
        assert (state.precedence >= -tol).all() and (state.precedence.sum(-1) <= 1 + tol).all()
        alloc = mem.allocation_weighting(state.usage)
        assert (alloc >= -tol).all() and (alloc.sum(-1) <= 1 + tol).all()


def test_gradcheck_through_three_steps():
    N, W, R, B = 4, 3, 2, 2
    gen = torch.Generator().manual_seed(5)
    memory = Memory(N, W, R)
    init = random_state(B, N, W, R, gen)
    xis = torch.randn(3, B, memory.interface_size, generator=gen, dtype=torch.float64, requires_grad=True)
    mem0 = init.memory.clone().requires_grad_(True)

    def rollout(xis, mem0):
        state = init._replace(memory=mem0)
        outs = []
        for t in range(3):
            reads, state = memory(xis[t], state)
            outs.append(reads)
        return torch.stack(outs), state.link, state.usage

    assert torch.autograd.gradcheck(rollout, (xis, mem0), eps=1e-6, atol=1e-5)


def test_batch_independence():
    N, W, R = 8, 4, 2
    gen = torch.Generator().manual_seed(9)
    memory = Memory(N, W, R)
    state = random_state(5, N, W, R, gen)
    xis = torch.randn(4, 5, memory.interface_size, generator=gen, dtype=torch.float64)
    full = state
    for t in range(4):
        r_full, full = memory(xis[t], full)
    # sample 2 alone, and with the other samples replaced by different data
    alone = MemoryState(*(x[2:3] for x in state))
    other = random_state(5, N, W, R, gen)
    mixed = MemoryState(*(torch.cat([o[:2], s[2:3], o[3:]]) for o, s in zip(other, state)))
    xis_mixed = torch.randn(4, 5, memory.interface_size, generator=gen, dtype=torch.float64)
    xis_mixed[:, 2] = xis[:, 2]
    for t in range(4):
        r_alone, alone = memory(xis[t, 2:3], alone)
        r_mixed, mixed = memory(xis_mixed[t], mixed)
    close(r_alone[0], r_full[2], tol=1e-12)
    close(r_mixed[2], r_full[2], tol=1e-12)
    for a, f in zip(alone, full):
        close(a[0], f[2], tol=1e-12)


def test_state_stays_float32_under_bf16_autocast():
    memory = Memory(8, 4, 2)
    state = memory.initial_state(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        xi = torch.nn.Linear(5, memory.interface_size)(torch.randn(2, 5))
        assert xi.dtype == torch.bfloat16
        reads, state = memory(xi, state)
        reads, state = memory(xi, state)
    assert reads.dtype == torch.float32
    assert all(t.dtype == torch.float32 for t in state)
    assert torch.isfinite(reads).all()


def test_initial_state_is_zero_and_shaped():
    s = Memory(7, 3, 2).initial_state(4, dtype=torch.float64)
    assert s.memory.shape == (4, 7, 3) and s.link.shape == (4, 7, 7) and s.read_weights.shape == (4, 2, 7)
    assert s.usage.shape == s.precedence.shape == s.write_weights.shape == (4, 7)
    assert all(t.dtype == torch.float64 and not t.any() for t in s)


def test_fused_backward_passes_equal_plain_autograd():
    N, W, R, B = 6, 3, 2, 3
    gen = torch.Generator().manual_seed(21)
    init = random_state(B, N, W, R, gen)
    xis = torch.randn(4, B, mem.interface_size(W, R), generator=gen, dtype=torch.float64)
    results = []
    for fused in (True, False):
        memory = Memory(N, W, R, fused=fused)
        x = xis.clone().requires_grad_(True)
        state = MemoryState(*(t.clone().requires_grad_(True) for t in init))
        s, loss = state, 0
        for t in range(4):
            reads, s = memory(x[t], s)
            loss = loss + (reads * torch.linspace(-1, 1, W, dtype=torch.float64)).sum() + s.link.pow(2).sum()
        loss.backward()
        results.append([x.grad, *(t.grad for t in state), *s])
    for a, b in zip(*results):
        close(a, b, tol=1e-10)


def test_fused_gradcheck_with_every_input():
    N, W, R, B = 4, 2, 2, 2
    gen = torch.Generator().manual_seed(4)
    init = random_state(B, N, W, R, gen)
    xi = torch.randn(2, B, mem.interface_size(W, R), generator=gen, dtype=torch.float64, requires_grad=True)
    leaves = [t.clone().requires_grad_(True) for t in init]

    def run(xi, *leaves):
        s = MemoryState(*leaves)
        for t in range(2):
            reads, s = Memory(N, W, R, fused=True)(xi[t], s)
        return reads, s.link, s.memory

    assert torch.autograd.gradcheck(run, (xi, *leaves), eps=1e-6, atol=1e-5)


def test_free_list_by_ranks_equals_the_stable_sort(monkeypatch):
    gen = torch.Generator().manual_seed(2)
    usage = torch.rand(6, 40, generator=gen).round(decimals=1)  # many ties
    usage[0] = 0.0  # all tied, as in the initial state
    expected = torch.sort(usage, dim=-1, stable=True).indices
    # the GPU path, run on the CPU by pretending the tensor is on CUDA
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    assert torch.equal(mem.free_list(usage), expected)
