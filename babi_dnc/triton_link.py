"""Triton kernels for the temporal link (GPU): the update and both directional weightings in one pass over
the N x N link matrix, and a backward pass that recomputes L_t from L_{t-1}, as the CPU kernel does.

    forward:  L[i,j]  = (1 - w[i] - w[j]) Lp[i,j] + w[i] p[j],  L[i,i] = 0
              f[r,i]  = sum_j L[i,j] rw[r,j],    b[r,j] = sum_i L[i,j] rw[r,i]
    backward: G[i,j]  = gL[i,j] + sum_r gf[r,i] rw[r,j] + sum_r rw[r,i] gb[r,j],  G[i,i] = 0
              dLp[i,j] = G[i,j] (1 - w[i] - w[j])
              dw[k]    = sum_j G[k,j] (p[j] - Lp[k,j]) - sum_i G[i,k] Lp[i,k]
              dp[j]    = sum_i G[i,j] w[i]
              drw[r,j] = sum_i gf[r,i] L[i,j] + sum_i gb[r,i] L[j,i]

Shapes: Lp, L, gL, dLp [B, N, N]; w, p, dw, dp [B, N]; rw, f, b, gf, gb, drw [B, R, N].

Each program owns a block of BLOCK_I rows of one sample's matrix, all N columns at once (N <= MAX_SLOTS).
Row sums (f, and the row parts of dw and drw) stay inside a program. Column sums (b, dp, and the column
parts of dw and drw) are written per row block into a small buffer [B, N / BLOCK_I, ., N] and summed by
PyTorch afterwards: deterministic, and no atomics. The link matrices are read once and written once.

The two functions are registered as custom ops (torch.ops.babi_dnc_gpu.link_forward / link_backward) with
fake implementations, so torch.compile treats each as one opaque call and fuses the code around it.
memory._FusedLinkRead calls them for CUDA tensors (kernels.link_kernel decides). With the environment
variable TRITON_INTERPRET=1 set when this module is imported and when the kernels run, Triton runs the same
kernels on CPU tensors (tests/test_triton_link.py).
"""

from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

MAX_SLOTS = 8192  # N above this: the PyTorch implementation (a row block would not fit in registers)
TILE = 4096  # elements of one program's [BLOCK_I, BLOCK_J] tile


@triton.jit
def _load_rows(lp_ptr, w_ptr, p_ptr, N, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr):
    """This program's row block: its indices, masks and offsets, Lp[rows, :], w[rows], w[:], p[:], and
    L[rows, :] = (1 - w[i] - w[j]) Lp[i,j] + w[i] p[j] with its diagonal 0 (outside the matrix all inputs
    load as 0, and so is L)."""
    b = tl.program_id(0).to(tl.int64)
    rows = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)
    cols = tl.arange(0, BLOCK_J)
    row_in, col_in = rows < N, cols < N
    inside = row_in[:, None] & col_in[None, :]
    offsets = b * N * N + rows[:, None] * N + cols[None, :]
    lp = tl.load(lp_ptr + offsets, mask=inside, other=0.0)
    w_i = tl.load(w_ptr + b * N + rows, mask=row_in, other=0.0)
    w_j = tl.load(w_ptr + b * N + cols, mask=col_in, other=0.0)
    p_j = tl.load(p_ptr + b * N + cols, mask=col_in, other=0.0)
    scale = (1 - w_i)[:, None] - w_j[None, :]  # 1 - w[i] - w[j]
    link = tl.where(rows[:, None] == cols[None, :], 0.0, scale * lp + w_i[:, None] * p_j[None, :])
    return b, rows, cols, row_in, col_in, inside, offsets, lp, w_i, p_j, scale, link


@triton.jit
def _link_forward_kernel(lp_ptr, w_ptr, p_ptr, rw_ptr, l_ptr, f_ptr, bpart_ptr, N,
                         R: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr):
    """One row block of one sample: L (stored), f (stored), and this block's share of b (bpart)."""
    b, rows, cols, row_in, col_in, inside, offsets, lp, w_i, p_j, scale, link = _load_rows(
        lp_ptr, w_ptr, p_ptr, N, BLOCK_I, BLOCK_J
    )
    ib = tl.program_id(1)
    blocks = tl.num_programs(1)
    tl.store(l_ptr + offsets, link, mask=inside)
    for r in tl.static_range(R):
        head = (b * R + r) * N
        rw_j = tl.load(rw_ptr + head + cols, mask=col_in, other=0.0)
        rw_i = tl.load(rw_ptr + head + rows, mask=row_in, other=0.0)
        tl.store(f_ptr + head + rows, tl.sum(link * rw_j[None, :], axis=1), mask=row_in)
        part = ((b * blocks + ib) * R + r) * N
        tl.store(bpart_ptr + part + cols, tl.sum(link * rw_i[:, None], axis=0), mask=col_in)


@triton.jit
def _link_backward_kernel(gl_ptr, gf_ptr, gb_ptr, lp_ptr, w_ptr, p_ptr, rw_ptr, dlp_ptr, dw_ptr, drw_ptr,
                          cpart_ptr, N, R: tl.constexpr, HAS_GL: tl.constexpr, BLOCK_I: tl.constexpr,
                          BLOCK_J: tl.constexpr):
    """One row block: L recomputed, G, dLp (stored), the row parts of dw and drw (stored), and this block's
    column sums [dw part, dp, drw (R rows)] into cpart [B, blocks, 2 + R, N]."""
    b, rows, cols, row_in, col_in, inside, offsets, lp, w_i, p_j, scale, link = _load_rows(
        lp_ptr, w_ptr, p_ptr, N, BLOCK_I, BLOCK_J
    )
    ib = tl.program_id(1)
    blocks = tl.num_programs(1)
    diagonal = rows[:, None] == cols[None, :]
    if HAS_GL:
        g = tl.load(gl_ptr + offsets, mask=inside, other=0.0)
    else:
        g = tl.zeros_like(lp)
    part = (b * blocks + ib) * (2 + R) * N
    for r in tl.static_range(R):
        head = (b * R + r) * N
        rw_i = tl.load(rw_ptr + head + rows, mask=row_in, other=0.0)
        rw_j = tl.load(rw_ptr + head + cols, mask=col_in, other=0.0)
        gf_i = tl.load(gf_ptr + head + rows, mask=row_in, other=0.0)
        gb_j = tl.load(gb_ptr + head + cols, mask=col_in, other=0.0)
        g += gf_i[:, None] * rw_j[None, :] + rw_i[:, None] * gb_j[None, :]
        tl.store(drw_ptr + head + rows, tl.sum(link * gb_j[None, :], axis=1), mask=row_in)  # sum_j gb[r,j] L[i,j]
        tl.store(cpart_ptr + part + (2 + r) * N + cols, tl.sum(gf_i[:, None] * link, axis=0), mask=col_in)
    g = tl.where(diagonal, 0.0, g)  # L_t[i,i] is the constant 0
    tl.store(dlp_ptr + offsets, g * scale, mask=inside)
    tl.store(dw_ptr + b * N + rows, tl.sum(g * (p_j[None, :] - lp), axis=1), mask=row_in)
    tl.store(cpart_ptr + part + cols, -tl.sum(g * lp, axis=0), mask=col_in)
    tl.store(cpart_ptr + part + N + cols, tl.sum(g * w_i[:, None], axis=0), mask=col_in)


def _blocks(N: int, block_rows: int | None) -> tuple[int, int]:
    """(BLOCK_I, BLOCK_J): all N columns (a power of two at least N) and as many rows as fill a tile."""
    block_j = triton.next_power_of_2(N)
    block_i = block_rows or max(1, min(triton.next_power_of_2(N), TILE // block_j))
    return block_i, block_j


def _check(prev_link: Tensor, write_weights: Tensor, prev_precedence: Tensor, prev_read_weights: Tensor) -> None:
    B, N = write_weights.shape
    if prev_link.shape != (B, N, N) or prev_precedence.shape != (B, N) or prev_read_weights.shape[::2] != (B, N):
        raise ValueError("link inputs must be prev_link [B, N, N], write_weights and prev_precedence [B, N], "
                         "prev_read_weights [B, R, N]")
    if len({t.dtype for t in (prev_link, write_weights, prev_precedence, prev_read_weights)}) != 1:
        raise ValueError("all link inputs must have the same dtype")
    if N > MAX_SLOTS:
        raise ValueError(f"the Triton link kernel handles at most {MAX_SLOTS} slots, got {N}")


def link_forward_impl(prev_link: Tensor, write_weights: Tensor, prev_precedence: Tensor, prev_read_weights: Tensor,
                      block_rows: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(L_t [B, N, N], forward f [B, R, N], backward b [B, R, N]); block_rows overrides BLOCK_I (tests)."""
    _check(prev_link, write_weights, prev_precedence, prev_read_weights)
    lp, w, p, rw = (t.contiguous() for t in (prev_link, write_weights, prev_precedence, prev_read_weights))
    B, R, N = rw.shape
    block_i, block_j = _blocks(N, block_rows)
    blocks = triton.cdiv(N, block_i)
    link, forward = torch.empty_like(lp), torch.empty_like(rw)
    bpart = torch.empty(B, blocks, R, N, device=lp.device, dtype=lp.dtype)
    if B and N:
        _link_forward_kernel[(B, blocks)](lp, w, p, rw, link, forward, bpart, N, R=R, BLOCK_I=block_i,
                                          BLOCK_J=block_j)
    return link, forward, bpart.sum(1)


def link_backward_impl(g_link: Optional[Tensor], g_forward: Tensor, g_backward: Tensor, prev_link: Tensor,  # noqa: UP045
                       write_weights: Tensor, prev_precedence: Tensor, prev_read_weights: Tensor,
                       block_rows: int | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(dL_{t-1} [B, N, N], dw [B, N], dp_{t-1} [B, N], d prev_read_weights [B, R, N]); g_link may be None
    (nothing flows back into L_t, as at the last step of a sequence)."""
    _check(prev_link, write_weights, prev_precedence, prev_read_weights)
    lp, w, p, rw = (t.contiguous() for t in (prev_link, write_weights, prev_precedence, prev_read_weights))
    gf, gb = g_forward.contiguous(), g_backward.contiguous()
    gl = g_link.contiguous() if g_link is not None else lp  # not read when HAS_GL is False
    B, R, N = rw.shape
    block_i, block_j = _blocks(N, block_rows)
    blocks = triton.cdiv(N, block_i)
    d_link, d_w_rows, d_rw_rows = torch.empty_like(lp), torch.empty_like(w), torch.empty_like(rw)
    cpart = torch.empty(B, blocks, 2 + R, N, device=lp.device, dtype=lp.dtype)
    if B and N:
        _link_backward_kernel[(B, blocks)](gl, gf, gb, lp, w, p, rw, d_link, d_w_rows, d_rw_rows, cpart, N, R=R,
                                           HAS_GL=g_link is not None, BLOCK_I=block_i, BLOCK_J=block_j)
    columns = cpart.sum(1)  # [B, 2 + R, N]
    return d_link, d_w_rows + columns[:, 0], columns[:, 1].contiguous(), d_rw_rows + columns[:, 2:]


# ------------------------------------------------------------------------------- custom ops for torch.compile


@torch.library.custom_op("babi_dnc_gpu::link_forward", mutates_args=())
def link_forward(prev_link: Tensor, write_weights: Tensor, prev_precedence: Tensor,
                 prev_read_weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """L_t and both directional weightings (see the module docstring), one pass over N x N."""
    return link_forward_impl(prev_link, write_weights, prev_precedence, prev_read_weights)


# The fake implementations give torch.compile the outputs' shapes and strides: contiguous, as the real ones.
@link_forward.register_fake
def _(prev_link, write_weights, prev_precedence, prev_read_weights):
    rw = prev_read_weights
    return prev_link.new_empty(prev_link.shape), rw.new_empty(rw.shape), rw.new_empty(rw.shape)


@torch.library.custom_op("babi_dnc_gpu::link_backward", mutates_args=())
def link_backward(g_link: Optional[Tensor], g_forward: Tensor, g_backward: Tensor, prev_link: Tensor,  # noqa: UP045
                  write_weights: Tensor, prev_precedence: Tensor,
                  prev_read_weights: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The gradients of link_forward's inputs, with L_t recomputed from L_{t-1} (see the module docstring)."""
    return link_backward_impl(g_link, g_forward, g_backward, prev_link, write_weights, prev_precedence,
                              prev_read_weights)


@link_backward.register_fake
def _(g_link, g_forward, g_backward, prev_link, write_weights, prev_precedence, prev_read_weights):
    return tuple(t.new_empty(t.shape) for t in (prev_link, write_weights, prev_precedence, prev_read_weights))
