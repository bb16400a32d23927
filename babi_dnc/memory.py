"""The DNC's external memory, as in the Methods of Graves et al., Nature 538 (2016).

Read this file beside the paper. Every attention mechanism is one small pure function whose docstring gives
its equation and tensor shapes (the interface vector's split and activations are in interface.py);
`Memory.forward` runs one time step in the paper's order:

    1. usage        u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} o w^w_{t-1}) o psi_t,
                    psi_t = prod_i (1 - f^i_t w^{r,i}_{t-1})                        (retention)
    2. allocation   a_t[phi_t[j]] = (1 - u_t[phi_t[j]]) prod_{i<j} u_t[phi_t[i]]    (phi_t: usage sorted up)
    3. write        c^w_t = C(M_{t-1}, k^w_t, beta^w_t)
                    w^w_t = g^w_t [g^a_t a_t + (1 - g^a_t) c^w_t]
    4. erase/write  M_t = M_{t-1} o (E - w^w_t e_t^T) + w^w_t v_t^T
    5. link         L_t[i,j] = (1 - w^w_t[i] - w^w_t[j]) L_{t-1}[i,j] + w^w_t[i] p_{t-1}[j],  L_t[i,i] = 0
    6. precedence   p_t = (1 - sum_i w^w_t[i]) p_{t-1} + w^w_t
    7. read         f^i_t = L_t w^{r,i}_{t-1},  b^i_t = L_t^T w^{r,i}_{t-1},
                    c^{r,i}_t = C(M_t, k^{r,i}_t, beta^{r,i}_t)
                    w^{r,i}_t = pi^i_t[1] b^i_t + pi^i_t[2] c^{r,i}_t + pi^i_t[3] f^i_t
                    r^i_t = M_t^T w^{r,i}_t

Shapes: B batch, N memory slots, W word size, R read heads.

The three improvements of Csordás & Schmidhuber (ICLR 2019, "Improving Differentiable Neural Computers through
memory masking, de-allocation, and link distribution sharpness control") are options of `Memory`, off by
default so that the default memory is the paper's:

    masked      C(M, k, beta, m)[i] = softmax_i(beta D(k o m, M[i] o m)),  m = sigmoid(.) per key [W]
                (the controller chooses which parts of a word a lookup compares; the interface grows by
                (R + 1) W: R read masks, then the write mask, appended after the paper's fields)
    deallocate  M_t = (M_{t-1} o psi_t 1^T) o (E - w^w_t e_t^T) + w^w_t v_t^T
                (freed cells are wiped, so that stale contents no longer match content lookups)
    sharpness   f^i_t = S(L_t w^{r,i}_{t-1}, s^{f,i}_t),  b^i_t = S(L_t^T w^{r,i}_{t-1}, s^{b,i}_t),
                S(d, s)_i = d_i^s / (sum_j d_j^s + 1e-6),  s = oneplus(.) per head and direction
                (link distribution sharpness control: the temporal links blur with every write that is not
                one-hot; the controller can sharpen them back; the interface grows by 2R, after the masks)

Without temporal links (`links=False`, the content-only memory of Franke et al. 2018's ADNC), steps 5 and 6
are skipped (link and precedence stay zero) and every read head reads by content alone: w^{r,i}_t = c^{r,i}_t
(the read modes of the interface are then unused).

Conventions where the paper is silent (so that every implementation of the contract computes the same
numbers): cosine similarity uses sqrt(|x|^2 + 1e-6) in both norms; usage enters the allocation as it is;
the ascending sort of usage is stable (ties go to the lower slot index).

The state is kept in float32 (or float64 when the interface is float64): `Memory.forward` runs outside any
autocast region, so bf16 autocast speeds up the controller but never touches the memory arithmetic.
Nothing in a step reads a value back to the host.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from . import kernels
from .interface import (  # noqa: F401  (re-exported: the memory's contract names them here too)
    Interface,
    interface_size,
    mask_size,
    oneplus,
    sharpness_size,
    split_interface,
    split_masks,
    split_parts,
    split_sharpness,
)

COSINE_EPSILON = 1e-6
SHARPEN_EPSILON = 1e-6  # in S(d, s)'s denominator: a directional weighting without links stays zero


class MemoryState(NamedTuple):
    """Everything the memory carries from one step to the next."""

    memory: Tensor  # [B, N, W]  M_t
    usage: Tensor  # [B, N]     u_t
    link: Tensor  # [B, N, N]  L_t
    precedence: Tensor  # [B, N]     p_t
    read_weights: Tensor  # [B, R, N]  w^r_t
    write_weights: Tensor  # [B, N]     w^w_t


# ---------------------------------------------------------------------------------- content addressing


def cosine_similarity(memory: Tensor, keys: Tensor, eps: float = COSINE_EPSILON) -> Tensor:
    """D(k, M[i]) = k . M[i] / (sqrt(|k|^2 + eps) sqrt(|M[i]|^2 + eps)).

    memory [B, N, W], keys [B, H, W] -> similarity [B, H, N]
    """
    dot = torch.bmm(keys, memory.transpose(1, 2))  # [B, H, N]
    key_norm = torch.sqrt(keys.pow(2).sum(-1) + eps)  # [B, H]
    mem_norm = torch.sqrt(memory.pow(2).sum(-1) + eps)  # [B, N]
    return dot / (key_norm.unsqueeze(-1) * mem_norm.unsqueeze(1))


def masked_cosine_similarity(memory: Tensor, keys: Tensor, masks: Tensor, eps: float = COSINE_EPSILON) -> Tensor:
    """D(k o m, M[i] o m), one mask per key, without forming the masked memory for every key:
    (k o m) . (M[i] o m) = (k o m o m) . M[i]  and  |M[i] o m|^2 = (M[i] o M[i]) . (m o m).

    memory [B, N, W], keys [B, H, W], masks [B, H, W] -> similarity [B, H, N]
    """
    dot = torch.bmm(keys * masks * masks, memory.transpose(1, 2))  # [B, H, N]
    key_norm = torch.sqrt((keys * masks).pow(2).sum(-1) + eps)  # [B, H]
    mem_norm = torch.sqrt(torch.bmm(masks.pow(2), memory.pow(2).transpose(1, 2)) + eps)  # [B, H, N]
    return dot / (key_norm.unsqueeze(-1) * mem_norm)


def content_weighting(memory: Tensor, keys: Tensor, strengths: Tensor, masks: Tensor | None = None) -> Tensor:
    """C(M, k, beta)[i] = exp(beta D(k, M[i])) / sum_j exp(beta D(k, M[j])); with masks m, D(k o m, M[i] o m).

    memory [B, N, W], keys [B, H, W], strengths [B, H], masks [B, H, W] or None -> weights [B, H, N]
    (each row sums to 1)
    """
    similarity = cosine_similarity(memory, keys) if masks is None else masked_cosine_similarity(memory, keys, masks)
    return torch.softmax(strengths.unsqueeze(-1) * similarity, dim=-1)


# ---------------------------------------------------------------------------------- dynamic allocation


def retention(free_gates: Tensor, prev_read_weights: Tensor) -> Tensor:
    """Memory retention vector psi_t = prod_i (1 - f^i_t w^{r,i}_{t-1}).

    free_gates [B, R], prev_read_weights [B, R, N] -> psi [B, N]
    """
    return torch.prod(1 - free_gates.unsqueeze(-1) * prev_read_weights, dim=1)


def usage_update(prev_usage: Tensor, prev_write_weights: Tensor, psi: Tensor) -> Tensor:
    """u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} o w^w_{t-1}) o psi_t.

    prev_usage [B, N], prev_write_weights [B, N], psi [B, N] -> usage [B, N]
    """
    return (prev_usage + prev_write_weights - prev_usage * prev_write_weights) * psi


def exclusive_cumprod(x: Tensor) -> Tensor:
    """[x1, x2, x3, ...] -> [1, x1, x1 x2, ...] along the last dimension."""
    ones = torch.ones_like(x[..., :1])
    return torch.cumprod(torch.cat([ones, x[..., :-1]], dim=-1), dim=-1)


def free_list(usage: Tensor) -> Tensor:
    """phi_t: the slot indices sorted by ascending usage, ties by the lower index.  usage [B, N] -> phi [B, N]

    On a CPU this is a stable sort. On a GPU it is computed from ranks, with the same result:
    rank[j] = #{i : u[i] < u[j] or (u[i] == u[j] and i < j)} and phi[rank[j]] = j. That costs N^2
    comparisons, but unlike CUDA's stable segmented sort it can be captured in a CUDA graph.
    """
    if not usage.is_cuda:
        return torch.sort(usage.detach(), dim=-1, stable=True).indices
    u = usage.detach()
    N = u.shape[-1]
    index = torch.arange(N, device=u.device)
    before = (u.unsqueeze(-1) < u.unsqueeze(-2)) | ((u.unsqueeze(-1) == u.unsqueeze(-2)) & (index[:, None] < index))
    rank = before.sum(-2)  # [B, N]: how many slots come before slot j
    return torch.empty_like(rank).scatter_(-1, rank, index.expand_as(rank))


def allocation_weighting(usage: Tensor) -> Tensor:
    """a_t[phi_t[j]] = (1 - u_t[phi_t[j]]) prod_{i=1}^{j-1} u_t[phi_t[i]].

    phi_t is the list of slot indices sorted by ascending usage (a stable sort: ties by lower index).
    usage [B, N] -> allocation [B, N]
    Example: usage [0.2, 0.4, 0.5] -> allocation [0.8, 0.2 * 0.6, 0.2 * 0.4 * 0.5] = [0.8, 0.12, 0.04].
    """
    phi = free_list(usage)  # [B, N]
    sorted_usage = usage.gather(-1, phi)  # [B, N]
    sorted_allocation = (1 - sorted_usage) * exclusive_cumprod(sorted_usage)  # [B, N]
    return torch.empty_like(sorted_allocation).scatter_(-1, phi, sorted_allocation)


def write_weighting(
    content_weights: Tensor, allocation: Tensor, allocation_gate: Tensor, write_gate: Tensor
) -> Tensor:
    """w^w_t = g^w_t [g^a_t a_t + (1 - g^a_t) c^w_t].

    content_weights [B, N], allocation [B, N], allocation_gate [B], write_gate [B] -> write_weights [B, N]
    """
    g_a, g_w = allocation_gate.unsqueeze(-1), write_gate.unsqueeze(-1)
    return g_w * (g_a * allocation + (1 - g_a) * content_weights)


# ------------------------------------------------------------------------------------------ erase/write


def deallocate(memory: Tensor, psi: Tensor) -> Tensor:
    """M_{t-1} o psi_t 1^T: wipe the freed part of every cell (Csordás & Schmidhuber 2019, de-allocation).

    memory [B, N, W], psi [B, N] -> memory [B, N, W]
    """
    return memory * psi.unsqueeze(-1)


def erase_and_write(memory: Tensor, write_weights: Tensor, erase_vector: Tensor, write_vector: Tensor) -> Tensor:
    """M_t = M_{t-1} o (E - w^w_t e_t^T) + w^w_t v_t^T   (E: the N x W matrix of ones).

    memory [B, N, W], write_weights [B, N], erase_vector [B, W], write_vector [B, W] -> memory [B, N, W]
    """
    w = write_weights.unsqueeze(-1)  # [B, N, 1]
    return memory * (1 - w * erase_vector.unsqueeze(1)) + w * write_vector.unsqueeze(1)


# -------------------------------------------------------------------------------- temporal memory links


def link_update(prev_link: Tensor, write_weights: Tensor, prev_precedence: Tensor) -> Tensor:
    """L_t[i,j] = (1 - w^w_t[i] - w^w_t[j]) L_{t-1}[i,j] + w^w_t[i] p_{t-1}[j],  with L_t[i,i] = 0.

    prev_link [B, N, N], write_weights [B, N], prev_precedence [B, N] -> link [B, N, N]
    """
    w_i = write_weights.unsqueeze(-1)  # [B, N, 1]
    w_j = write_weights.unsqueeze(-2)  # [B, 1, N]
    link = (1 - w_i - w_j) * prev_link + w_i * prev_precedence.unsqueeze(-2)
    return link.diagonal_scatter(torch.zeros_like(write_weights), dim1=-2, dim2=-1)


def precedence_update(prev_precedence: Tensor, write_weights: Tensor) -> Tensor:
    """p_t = (1 - sum_i w^w_t[i]) p_{t-1} + w^w_t.

    prev_precedence [B, N], write_weights [B, N] -> precedence [B, N]
    """
    return (1 - write_weights.sum(-1, keepdim=True)) * prev_precedence + write_weights


def directional_weightings(link: Tensor, prev_read_weights: Tensor) -> tuple[Tensor, Tensor]:
    """Forward f^i_t = L_t w^{r,i}_{t-1} and backward b^i_t = L_t^T w^{r,i}_{t-1}.

    link [B, N, N], prev_read_weights [B, R, N] -> (forward [B, R, N], backward [B, R, N])
    """
    # (L w^T)^T rather than w L^T: the same numbers, but BLAS reads L row by row, 2-3x faster on a CPU
    forward = torch.bmm(link, prev_read_weights.transpose(1, 2)).transpose(1, 2)  # f[r, i] = sum_j L[i, j] w[r, j]
    backward = torch.bmm(prev_read_weights, link)  # b[r, j] = sum_i L[i, j] w[r, i]
    return forward, backward


class _FusedLinkRead(torch.autograd.Function):
    """link_update, precedence-free part, and directional_weightings in one autograd node.

    The same numbers as `link_update` followed by `directional_weightings`, but the backward pass keeps
    only the new link matrix [B, N, N] per step (it is the next step's previous link, so nothing is stored
    twice), instead of the several N x N intermediates autograd would save. With G the gradient on L_t
    (from the next step and from both directional weightings) and the diagonal of G set to zero:

        dL_{t-1}[i,j] = G[i,j] (1 - w[i] - w[j])
        dw[k]         = sum_j G[k,j] (p_{t-1}[j] - L_{t-1}[k,j]) - sum_i G[i,k] L_{t-1}[i,k]
        dp_{t-1}[j]   = sum_i G[i,j] w[i]

    On a CPU it runs the compiled kernel of csrc/link_cpu.cpp when that could be built, on a GPU the Triton
    kernels of triton_link.py when Triton is there (kernels.link_kernel): one pass over each sample's N x N
    matrix forward, and one backward that recomputes L_t from L_{t-1}, so it stores only L_{t-1}.
    Elsewhere it runs the PyTorch code below.
    """

    @staticmethod
    def forward(ctx, prev_link, write_weights, prev_precedence, prev_read_weights):
        w, p = write_weights, prev_precedence
        ctx.kernel = kernels.link_kernel(prev_link)  # "cpu", "triton" or "" (PyTorch)
        if ctx.kernel:  # one pass over N x N, and one more for the backward
            ctx.save_for_backward(prev_link, w, p, prev_read_weights)
            return kernels.link_ops(ctx.kernel).link_forward(prev_link, w, p, prev_read_weights)
        # Three passes over N x N instead of six: scale, multiply in place, add the outer product in place.
        link = (1 - w).unsqueeze(-1) - w.unsqueeze(-2)  # [B, N, N]  1 - w[i] - w[j]
        link.mul_(prev_link).addcmul_(w.unsqueeze(-1), p.unsqueeze(-2))
        link.diagonal(dim1=-2, dim2=-1).zero_()
        forward, backward = directional_weightings(link, prev_read_weights)  # [B, R, N] each
        ctx.save_for_backward(prev_link, w, p, prev_read_weights, link)
        return link, forward, backward

    @staticmethod
    def backward(ctx, g_link, g_forward, g_backward):
        if ctx.kernel:  # recomputes L_t from L_{t-1} row by row instead of reading it back
            return kernels.link_ops(ctx.kernel).link_backward(g_link, g_forward, g_backward, *ctx.saved_tensors)
        prev_link, w, p, read_w, link = ctx.saved_tensors
        grads = [None] * 4
        if ctx.needs_input_grad[3]:  # forward = w_r L^T, backward = w_r L
            grads[3] = torch.bmm(g_forward, link).add_(torch.bmm(link, g_backward.transpose(1, 2)).transpose(1, 2))
        # G = g_link + g_forward^T w_r + w_r^T g_backward: one product with inner size 2R, added to g_link
        # in the same pass
        a = torch.cat([g_forward, read_w], 1).transpose(1, 2)  # [B, N, 2R]
        b = torch.cat([read_w, g_backward], 1)  # [B, 2R, N]
        G = torch.bmm(a, b) if g_link is None else torch.baddbmm(g_link, a, b)
        G.diagonal(dim1=-2, dim2=-1).zero_()  # [B, N, N]; L_t[i,i] is the constant 0
        buffer = None  # one N x N temporary, used for G o L_{t-1}, then for dL_{t-1}
        if ctx.needs_input_grad[1]:
            buffer = torch.mul(G, prev_link)
            Gp = torch.bmm(p.unsqueeze(1), G.transpose(1, 2)).squeeze(1)  # [B, N]  G p
            grads[1] = Gp.sub_(buffer.sum(-1)).sub_(buffer.sum(-2))
        if ctx.needs_input_grad[2]:
            grads[2] = torch.bmm(w.unsqueeze(1), G).squeeze(1)
        if ctx.needs_input_grad[0]:  # G (1 - w[i] - w[j])
            one_minus_w = (1 - w).unsqueeze(-1)  # [B, N, 1]
            buffer = G * one_minus_w if buffer is None else torch.mul(G, one_minus_w, out=buffer)
            grads[0] = buffer.addcmul_(G, w.unsqueeze(-2), value=-1)
        return tuple(grads)


class _FusedEraseWrite(torch.autograd.Function):
    """erase_and_write as one autograd node that saves no N x W intermediate (only its inputs).

        dM_{t-1}[i,k] = g[i,k] (1 - w[i] e[k]),   dw[i] = sum_k g[i,k] (v[k] - M_{t-1}[i,k] e[k]),
        de[k] = -sum_i g[i,k] M_{t-1}[i,k] w[i],  dv[k] = sum_i g[i,k] w[i]
    """

    @staticmethod
    def forward(ctx, memory, write_weights, erase_vector, write_vector):
        ctx.save_for_backward(memory, write_weights, erase_vector, write_vector)
        return erase_and_write(memory, write_weights, erase_vector, write_vector)

    @staticmethod
    def backward(ctx, g):
        memory, w, e, v = ctx.saved_tensors
        gw = g * w.unsqueeze(-1)  # [B, N, W]
        d_memory = g - gw * e.unsqueeze(1) if ctx.needs_input_grad[0] else None
        gM = g * memory  # [B, N, W]
        d_w = (g * v.unsqueeze(1)).sum(-1) - (gM * e.unsqueeze(1)).sum(-1)
        d_e = -(gM * w.unsqueeze(-1)).sum(1)
        d_v = gw.sum(1)
        return d_memory, d_w, d_e, d_v


def sharpen(weights: Tensor, sharpness: Tensor, eps: float = SHARPEN_EPSILON) -> Tensor:
    """S(d, s)_i = d_i^s / (sum_j d_j^s + eps): a directional weighting raised to the power s >= 1 and
    renormalised (Csordás & Schmidhuber 2019); an empty one (no links yet) stays zero.

    weights [B, R, N] (>= 0), sharpness [B, R] -> [B, R, N]
    """
    powered = weights.clamp_min(0).pow(sharpness.unsqueeze(-1))
    return powered / (powered.sum(-1, keepdim=True) + eps)


# ---------------------------------------------------------------------------------------------- reading


def read_weighting(backward: Tensor, content_weights: Tensor, forward: Tensor, read_modes: Tensor) -> Tensor:
    """w^{r,i}_t = pi^i_t[1] b^i_t + pi^i_t[2] c^{r,i}_t + pi^i_t[3] f^i_t.

    backward, content_weights, forward [B, R, N], read_modes [B, R, 3] -> read_weights [B, R, N]
    """
    pi = read_modes.unsqueeze(-1)  # [B, R, 3, 1]
    return pi[:, :, 0] * backward + pi[:, :, 1] * content_weights + pi[:, :, 2] * forward


def read_memory(memory: Tensor, read_weights: Tensor) -> Tensor:
    """r^i_t = M_t^T w^{r,i}_t.

    memory [B, N, W], read_weights [B, R, N] -> read_vectors [B, R, W]
    """
    return torch.bmm(read_weights, memory)


# ------------------------------------------------------------------------------------------------ module


TRACED_INTERFACE = ("free_gates", "allocation_gate", "write_gate", "read_modes", "erase_vector", "write_strength",
                    "read_strengths")  # the gates, modes and strengths of a step that plots show
TRACE_KEYS = ("write_weights", "read_weights", "usage", "allocation", "forward_weights", "backward_weights",
              *TRACED_INTERFACE)  # what a traced step records (Memory.forward with a trace dict)


def _traced_interface(xi: Interface) -> dict[str, Tensor]:
    """The interface values a step's trace keeps."""
    return {name: getattr(xi, name) for name in TRACED_INTERFACE}


def _retained(psi: Tensor, keep: Tensor | None) -> Tensor:
    """psi [B, N] for de-allocation, 1 (nothing freed) for padded samples (keep [B] False)."""
    return psi if keep is None else torch.where(keep.unsqueeze(-1), psi, torch.ones_like(psi))


def _no_write_on_padding(write_weights: Tensor, keep: Tensor | None) -> Tensor:
    """w^w [B, N] times 0 for padded samples: memory, link and precedence then stay exactly as they were."""
    return write_weights if keep is None else write_weights * keep.unsqueeze(-1).to(write_weights.dtype)


def _kept_on_padding(new: MemoryState, old: MemoryState, keep: Tensor | None) -> MemoryState:
    """The new state, with the old usage and weightings ([B, N] and [B, R, N]) for padded samples."""
    if keep is None:
        return new
    kept = keep.unsqueeze(-1)  # [B, 1]
    return new._replace(usage=torch.where(kept, new.usage, old.usage),
                        write_weights=torch.where(kept, new.write_weights, old.write_weights),
                        read_weights=torch.where(kept.unsqueeze(-1), new.read_weights, old.read_weights))


class Memory(nn.Module):
    """The DNC memory: one step `(interface, state) -> (read_vectors, new_state)`. No learnable parameters.

    Args:
        num_slots: N, the number of memory locations.
        word_size: W, the size of each location.
        num_reads: R, the number of read heads.
        fused: compute erase/write and link/directional weightings with hand-written backward passes that
            store one N x N matrix per step instead of several (same numbers; see _FusedLinkRead; the link
            runs the compiled C++ kernel on a CPU and the Triton kernels on a GPU where they are available).
            False runs the plain functions above through autograd.
        masked: masked content addressing (Csordás & Schmidhuber 2019); the interface is longer by (R + 1) W.
        deallocate: wipe freed cells before the write (Csordás & Schmidhuber 2019).
        sharpness: sharpen the directional weightings (Csordás & Schmidhuber 2019); the interface is
            longer by 2R, after the masks.
        links: the temporal link matrix and the directional reads; False reads by content only (ADNC).
    """

    def __init__(self, num_slots: int, word_size: int, num_reads: int, fused: bool = True, masked: bool = False,
                 deallocate: bool = False, sharpness: bool = False, links: bool = True):
        super().__init__()
        if min(num_slots, word_size, num_reads) < 1:
            raise ValueError("num_slots, word_size and num_reads must all be at least 1")
        if sharpness and not links:
            raise ValueError("sharpness sharpens the temporal links' weightings, so it needs links")
        self.num_slots, self.word_size, self.num_reads = num_slots, word_size, num_reads
        self.fused, self.masked, self.deallocate, self.sharpness = fused, masked, deallocate, sharpness
        self.links = links

    @property
    def interface_size(self) -> int:
        masks = mask_size(self.word_size, self.num_reads) if self.masked else 0
        sharpness = sharpness_size(self.num_reads) if self.sharpness else 0
        return interface_size(self.word_size, self.num_reads) + masks + sharpness

    def extra_repr(self) -> str:
        text = f"num_slots={self.num_slots}, word_size={self.word_size}, num_reads={self.num_reads}"
        options = ", masked=True" * self.masked + ", deallocate=True" * self.deallocate
        return text + options + ", sharpness=True" * self.sharpness + ", links=False" * (not self.links)

    def initial_state(self, batch_size: int, device=None, dtype=None) -> MemoryState:
        """The all-zero state at t = 0."""
        B, N, W, R = batch_size, self.num_slots, self.word_size, self.num_reads
        dtype = dtype or torch.float32
        zeros = lambda *shape: torch.zeros(*shape, device=device, dtype=dtype)  # noqa: E731
        return MemoryState(
            memory=zeros(B, N, W),
            usage=zeros(B, N),
            link=zeros(B, N, N),
            precedence=zeros(B, N),
            read_weights=zeros(B, R, N),
            write_weights=zeros(B, N),
        )

    def forward(
        self, interface: Tensor, state: MemoryState, trace: dict | None = None, keep: Tensor | None = None
    ) -> tuple[Tensor, MemoryState]:
        """One step: interface [B, interface_size] (raw), state -> (read_vectors [B, R, W], new state).

        If `trace` is a dict, every intermediate quantity of this step is stored in it (detached).
        keep [B] bool (padding): where False the new state is the old one. The write weighting of those
        samples is multiplied by 0 before it is used, which leaves memory, link and precedence exactly as
        they were (1 - 0 - 0 = 1, + 0); only the [B, N] parts are chosen with `where`. So no N x N or N x W
        matrix is copied for padding, forward or backward.
        """
        with torch.autocast(interface.device.type, enabled=False):
            parts = split_parts(interface.to(state.memory.dtype), self.word_size, self.num_reads, self.masked)
            xi = parts.xi
            # 1-2. Dynamic memory allocation (with de-allocation, the freed cells are wiped first).
            psi = retention(xi.free_gates, state.read_weights)  # [B, N]
            usage = usage_update(state.usage, state.write_weights, psi)  # [B, N]
            allocation = allocation_weighting(usage)  # [B, N]
            prev_memory = deallocate(state.memory, _retained(psi, keep)) if self.deallocate else state.memory
            # 3-4. Write weighting, erase and write.
            write_content = content_weighting(prev_memory, xi.write_key.unsqueeze(1), xi.write_strength.unsqueeze(1),
                                              parts.write_mask).squeeze(1)  # [B, N]
            write_weights = _no_write_on_padding(
                write_weighting(write_content, allocation, xi.allocation_gate, xi.write_gate), keep)  # [B, N]
            erase_write = _FusedEraseWrite.apply if self.fused else erase_and_write
            memory = erase_write(prev_memory, write_weights, xi.erase_vector, xi.write_vector)  # [B, N, W]
            # 5-6. Temporal memory linkage, and the directional weightings from the new link matrix.
            link, precedence, forward, backward = self._linkage(state, write_weights, parts.sharpness)
            # 7. Read.
            read_content = content_weighting(memory, xi.read_keys, xi.read_strengths, parts.read_masks)  # [B, R, N]
            read_weights = read_weighting(backward, read_content, forward, xi.read_modes) if self.links \
                else read_content  # [B, R, N]
            read_vectors = read_memory(memory, read_weights)  # [B, R, W]
        if trace is not None:
            trace.update(write_weights=write_weights, read_weights=read_weights, usage=usage, allocation=allocation,
                         forward_weights=forward, backward_weights=backward, **_traced_interface(xi))
        new_state = MemoryState(memory, usage, link, precedence, read_weights, write_weights)
        return read_vectors, _kept_on_padding(new_state, state, keep)

    def _linkage(self, state: MemoryState, write_weights: Tensor, sharpness: Tensor
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Steps 5 and 6 and the directional weightings: (link [B, N, N], precedence [B, N], forward [B, R, N],
        backward [B, R, N]); without links, the state's link and precedence and zero weightings.
        sharpness: the interface's sharpness part [B, 2R] (empty without the option)."""
        if not self.links:
            zero = torch.zeros_like(state.read_weights)
            return state.link, state.precedence, zero, zero
        if self.fused:
            link, forward, backward = _FusedLinkRead.apply(state.link, write_weights, state.precedence,
                                                           state.read_weights)
        else:
            link = link_update(state.link, write_weights, state.precedence)  # [B, N, N]
            forward, backward = directional_weightings(link, state.read_weights)  # [B, R, N] each
        precedence = precedence_update(state.precedence, write_weights)  # [B, N]
        if self.sharpness:
            forward_sharpness, backward_sharpness = split_sharpness(sharpness, self.num_reads)
            forward, backward = sharpen(forward, forward_sharpness), sharpen(backward, backward_sharpness)
        return link, precedence, forward, backward
