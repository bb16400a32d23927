"""The compiled CPU link kernel (babi_dnc/csrc/link_cpu.cpp) against the paper's equations in memory.py."""

import shutil
import sys

import pytest
import torch

from babi_dnc import kernels
from babi_dnc.memory import _FusedLinkRead, directional_weightings, link_update


def _built() -> bool:
    ok = kernels.cpu_link_kernel()
    if not ok and sys.platform.startswith("linux") and shutil.which("c++"):
        pytest.fail(f"a C++ compiler is here but the CPU link kernel did not build: {kernels.status()}")
    return ok


def random_inputs(B=3, N=7, R=2, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    link = torch.rand(B, N, N, generator=gen, dtype=dtype) / N
    link.diagonal(dim1=-2, dim2=-1).zero_()
    w = torch.softmax(torch.randn(B, N, generator=gen, dtype=dtype), -1) * 0.9  # sums to 0.9
    p = torch.softmax(torch.randn(B, N, generator=gen, dtype=dtype), -1) * 0.8
    rw = torch.softmax(torch.randn(B, R, N, generator=gen, dtype=dtype), -1)
    return link, w, p, rw


def reference(link, w, p, rw):
    new_link = link_update(link, w, p)
    return (new_link, *directional_weightings(new_link, rw))


def autograd_backward(inputs, with_link_grad: bool, seed: int = 5):
    """Random output gradients and the input gradients autograd gives through `reference`:
    (g_link or None, g_forward, g_backward, want); without the link's gradient, as at a sequence's last step."""
    outputs = reference(*inputs)
    gen = torch.Generator().manual_seed(seed)
    grads = [torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in outputs]
    if not with_link_grad:  # the last step of a sequence: nothing flows back into L_t
        outputs, grads = outputs[1:], grads[1:]
    want = torch.autograd.grad(outputs, inputs, grads)
    return (grads[0] if with_link_grad else None), grads[-2], grads[-1], want


@pytest.fixture
def kernel():
    """Skips where no compiler is (the memory then runs the PyTorch code); fails where one is."""
    if not _built():
        pytest.skip(f"no CPU link kernel: {kernels.status()}")


@pytest.mark.parametrize("R", [1, 2, 3, 4])
def test_forward_matches_the_equations(R, kernel):
    inputs = random_inputs(R=R, seed=R)
    for got, want in zip(torch.ops.babi_dnc.link_forward(*inputs), reference(*inputs)):
        torch.testing.assert_close(got, want, atol=1e-15, rtol=1e-13)


def test_forward_by_hand(kernel):
    """N = 2, one sample: L = [[0, 0], [0.5 * 0.2 + 0.25 * 0.5, 0]] with w = (0.25, 0.5), p = (0.5, 0.2)."""
    link = torch.tensor([[[0.0, 0.0], [0.5, 0.0]]], dtype=torch.float64)
    w = torch.tensor([[0.25, 0.5]], dtype=torch.float64)
    p = torch.tensor([[0.5, 0.2]], dtype=torch.float64)
    rw = torch.tensor([[[1.0, 0.0]]], dtype=torch.float64)  # read head on slot 0
    new_link, forward, backward = torch.ops.babi_dnc.link_forward(link, w, p, rw)
    # L[0,1] = (1 - .25 - .5) * 0 + .25 * .2 = 0.05;  L[1,0] = (1 - .5 - .25) * .5 + .5 * .5 = 0.375
    expected = torch.tensor([[[0.0, 0.05], [0.375, 0.0]]], dtype=torch.float64)
    torch.testing.assert_close(new_link, expected, atol=1e-15, rtol=0)
    torch.testing.assert_close(forward, torch.tensor([[[0.0, 0.375]]], dtype=torch.float64))  # column 0 of L
    torch.testing.assert_close(backward, torch.tensor([[[0.0, 0.05]]], dtype=torch.float64))  # row 0 of L


@pytest.mark.parametrize("with_link_grad", [True, False])
@pytest.mark.parametrize("R", [1, 4])
def test_backward_matches_autograd_through_the_equations(R, with_link_grad, kernel):
    inputs = [t.requires_grad_() for t in random_inputs(R=R, seed=10 + R)]
    g_link, g_forward, g_backward, want = autograd_backward(inputs, with_link_grad)
    got = torch.ops.babi_dnc.link_backward(g_link, g_forward, g_backward, *[t.detach() for t in inputs])
    for name, g, w in zip(("link", "write_weights", "precedence", "read_weights"), got, want):
        torch.testing.assert_close(g, w, atol=1e-14, rtol=1e-12, msg=name)


def test_gradcheck_of_the_fused_function(kernel):
    inputs = [t.requires_grad_() for t in random_inputs(B=2, N=5, R=2, seed=3)]
    assert torch.autograd.gradcheck(_FusedLinkRead.apply, inputs)


def test_float32_agrees_with_float64(kernel):
    inputs = random_inputs(B=4, N=64, R=4, seed=7)
    want = torch.ops.babi_dnc.link_forward(*inputs)
    got = torch.ops.babi_dnc.link_forward(*[t.float() for t in inputs])
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w, atol=1e-6, rtol=1e-5)


def test_no_write_leaves_the_link_bit_exact(kernel):
    """Padding gates the write weighting to 0; the link must then come out unchanged, bit for bit."""
    link, _, p, rw = random_inputs(dtype=torch.float32, seed=4)
    new_link, *_ = torch.ops.babi_dnc.link_forward(link, torch.zeros_like(p), p, rw)
    assert torch.equal(new_link, link)


def test_the_pytorch_fallback_computes_the_same(monkeypatch, kernel):
    inputs = [t.requires_grad_() for t in random_inputs(R=3, seed=8)]
    out_kernel = _FusedLinkRead.apply(*inputs)
    grads_kernel = torch.autograd.grad(sum(o.sum() for o in out_kernel), inputs)
    monkeypatch.setitem(kernels._state, "ok", False)
    out_eager = _FusedLinkRead.apply(*inputs)
    grads_eager = torch.autograd.grad(sum(o.sum() for o in out_eager), inputs)
    for a, b in zip((*out_kernel, *grads_kernel), (*out_eager, *grads_eager)):
        torch.testing.assert_close(a, b, atol=1e-14, rtol=1e-12)


def test_a_failed_build_warns_once_and_falls_back(monkeypatch):
    monkeypatch.setattr(kernels, "_state", {"tried": False, "ok": False, "error": None})

    def broken_build():
        raise RuntimeError("Error building extension 'babi_dnc_link_cpu'\nc++: not found")

    monkeypatch.setattr(kernels, "_build", broken_build)
    with pytest.warns(UserWarning, match="could not be built"):
        assert kernels.cpu_link_kernel() is False
    assert kernels.cpu_link_kernel() is False  # no second attempt, no second warning
    assert "c++: not found" in kernels.status()


def test_a_stale_build_lock_is_removed_and_a_fresh_one_kept(tmp_path):
    """A build killed half-way leaves torch's lock file, on which every later build would wait forever."""
    import os
    import time

    stale, fresh = tmp_path / "stale", tmp_path / "fresh"
    stale.touch()
    fresh.touch()
    old = time.time() - kernels.STALE_LOCK_S - 60
    os.utime(stale, (old, old))
    kernels._remove_stale_lock(stale)
    kernels._remove_stale_lock(fresh)
    kernels._remove_stale_lock(tmp_path / "absent")
    assert not stale.exists() and fresh.exists()


def test_every_checkout_with_the_same_kernel_source_shares_one_build(tmp_path, monkeypatch):
    """The build compiles a copy of the source in a folder named by its digest: two checkouts of the same
    code (another path) share it, and another source gets a folder of its own."""
    cache = tmp_path / "cache"

    def build_directory(name, verbose=False):
        (cache / name).mkdir(parents=True, exist_ok=True)
        return str(cache / name)

    text = kernels.SOURCE.read_bytes()
    checkouts = [tmp_path / f"checkout-{i}" / "link_cpu.cpp" for i in range(3)]
    for path, source in zip(checkouts, (text, text, text + b"\n// another kernel\n")):
        path.parent.mkdir()
        path.write_bytes(source)
    builds = []
    for path in checkouts:
        monkeypatch.setattr(kernels, "SOURCE", path)
        builds.append(kernels._build_source(build_directory))
    (name_a, copy_a), (name_b, copy_b), (name_c, copy_c) = builds
    assert (name_a, copy_a) == (name_b, copy_b) and copy_a.parent == cache / name_a
    assert copy_a.read_bytes() == text and name_a.startswith("babi_dnc_link_cpu_")
    assert name_c != name_a and copy_c.read_bytes() == checkouts[2].read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == sorted({name_a, name_c})
    assert [p.name for p in copy_a.parent.iterdir()] == ["link_cpu.cpp"]  # no half-written copy left
