"""The interface vector xi_t, through which the controller drives the memory (Graves et al. 2016, Methods,
"Interface parameters"): its length, its split into named fields, and the activations the paper applies.

    xi = [k^{r,1..R} (R*W), beta^{r,1..R} (R), k^w (W), beta^w (1), e (W), v (W), f^{1..R} (R), g^a (1),
          g^w (1), pi^{1..R} (3R)]                                      length R*W + 3W + 5R + 3

The options of `memory.Memory` append their own parts after the paper's fields: the masks of masked content
addressing ((R + 1) W), then the link sharpness (2R).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


class Interface(NamedTuple):
    """The interface vector xi_t after its activations (Methods, "Interface parameters")."""

    read_keys: Tensor  # [B, R, W]  k^{r,i}_t
    read_strengths: Tensor  # [B, R]     beta^{r,i}_t = oneplus(.)
    write_key: Tensor  # [B, W]     k^w_t
    write_strength: Tensor  # [B]        beta^w_t = oneplus(.)
    erase_vector: Tensor  # [B, W]     e_t = sigmoid(.)
    write_vector: Tensor  # [B, W]     v_t
    free_gates: Tensor  # [B, R]     f^i_t = sigmoid(.)
    allocation_gate: Tensor  # [B]        g^a_t = sigmoid(.)
    write_gate: Tensor  # [B]        g^w_t = sigmoid(.)
    read_modes: Tensor  # [B, R, 3]  pi^i_t = softmax(.), order (backward, content, forward)


def interface_size(word_size: int, num_reads: int) -> int:
    """Length of the raw interface vector: R*W + 3W + 5R + 3."""
    return num_reads * word_size + 3 * word_size + 5 * num_reads + 3


def mask_size(word_size: int, num_reads: int) -> int:
    """Length of the masks' part of the interface (masked content addressing): (R + 1) W."""
    return (num_reads + 1) * word_size


def split_masks(raw: Tensor, word_size: int, num_reads: int) -> tuple[Tensor, Tensor]:
    """The masks' part of the interface [B, (R + 1) W] -> (read masks [B, R, W], write mask [B, W]), sigmoid."""
    masks = torch.sigmoid(raw).reshape(raw.shape[0], num_reads + 1, word_size)
    return masks[:, :num_reads], masks[:, num_reads]


def sharpness_size(num_reads: int) -> int:
    """Length of the sharpness part of the interface: 2R (R forward strengths, then R backward)."""
    return 2 * num_reads


def split_sharpness(raw: Tensor, num_reads: int) -> tuple[Tensor, Tensor]:
    """The sharpness part of the interface [B, 2R] -> (forward [B, R], backward [B, R]), oneplus: >= 1."""
    sharpness = oneplus(raw).reshape(raw.shape[0], 2, num_reads)
    return sharpness[:, 0], sharpness[:, 1]


def oneplus(x: Tensor) -> Tensor:
    """oneplus(x) = 1 + log(1 + e^x), in [1, inf)."""
    return 1 + F.softplus(x)


def split_interface(xi: Tensor, word_size: int, num_reads: int) -> Interface:
    """Split the raw interface vector xi_t [B, R*W + 3W + 5R + 3] and apply the paper's activations.

    Order: R read keys (head after head), R read strengths, write key, write strength, erase vector,
    write vector, R free gates, allocation gate, write gate, R read modes (3 each, head after head).
    """
    B, W, R = xi.shape[0], word_size, num_reads
    sizes = [R * W, R, W, 1, W, W, R, 1, 1, 3 * R]
    keys, r_str, w_key, w_str, erase, write, free, g_a, g_w, modes = torch.split(xi, sizes, dim=-1)
    return Interface(
        read_keys=keys.reshape(B, R, W),
        read_strengths=oneplus(r_str),
        write_key=w_key,
        write_strength=oneplus(w_str).squeeze(-1),
        erase_vector=torch.sigmoid(erase),
        write_vector=write,
        free_gates=torch.sigmoid(free),
        allocation_gate=torch.sigmoid(g_a).squeeze(-1),
        write_gate=torch.sigmoid(g_w).squeeze(-1),
        read_modes=torch.softmax(modes.reshape(B, R, 3), dim=-1),
    )


class InterfaceParts(NamedTuple):
    """The whole raw interface of a memory with its options, split: the paper's fields and the options' parts."""

    xi: Interface
    read_masks: Tensor | None  # [B, R, W]  masked addressing (None without it)
    write_mask: Tensor | None  # [B, 1, W]
    sharpness: Tensor  # [B, 2R]  the raw sharpness part ([B, 0] without it; split_sharpness activates it)


def split_parts(raw: Tensor, word_size: int, num_reads: int, masked: bool) -> InterfaceParts:
    """The raw interface [B, interface_size (+ (R + 1) W masks) (+ 2R sharpness)] -> InterfaceParts: the
    paper's fields first, then the masks when `masked`, then what is left (the sharpness part)."""
    paper = interface_size(word_size, num_reads)
    xi = split_interface(raw[:, :paper], word_size, num_reads)
    if not masked:
        return InterfaceParts(xi, None, None, raw[:, paper:])
    end = paper + mask_size(word_size, num_reads)
    read_masks, write_mask = split_masks(raw[:, paper:end], word_size, num_reads)
    return InterfaceParts(xi, read_masks, write_mask.unsqueeze(1), raw[:, end:])
