"""Controllers of the DNC.

A controller is any `nn.Module` with this call shape (a `DNCCell` has it too, so a DNC can control a DNC):

    controller.output_size                                   # H
    controller.initial_state(batch_size, device, dtype)      # a (nested) tuple of batch-first tensors
    controller(x_t [B, X], state) -> (h_t [B, H], state)

The DNC feeds it chi_t = [x_t; r^1_{t-1}; ...; r^R_{t-1}], the input and the previous step's read vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class LSTMController(nn.Module):
    """A deep LSTM as in the paper's Methods ("Controller network").

    Layer l sees the input and the layer below, [chi_t; h^{l-1}_t], besides its own h^l_{t-1}; the output
    is the concatenation of every layer's hidden state [h^1_t; ...; h^L_t], so H = hidden_size * num_layers.
    State: (h [B, L, hidden], c [B, L, hidden]). layer_norm: LayerNormLSTMCell layers instead of nn.LSTMCell.
    """

    def __init__(self, input_size: int, hidden_size: int = 256, num_layers: int = 1, layer_norm: bool = False):
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        cell = LayerNormLSTMCell if layer_norm else nn.LSTMCell
        self.cells = nn.ModuleList(
            cell(input_size + (hidden_size if l > 0 else 0), hidden_size) for l in range(num_layers)
        )
        self.output_size = hidden_size * num_layers

    def initial_state(self, batch_size: int, device=None, dtype=None) -> tuple[Tensor, Tensor]:
        shape = (batch_size, self.num_layers, self.hidden_size)
        return torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h_prev, c_prev = state  # [B, L, H] each
        hs, cs, below = [], [], None
        for l, cell in enumerate(self.cells):  # layers, not batch or slots
            inp = x if below is None else torch.cat([x, below], dim=-1)
            h, c = cell(inp, (h_prev[:, l], c_prev[:, l]))
            hs.append(h)
            cs.append(c)
            below = h
        return torch.cat(hs, dim=-1), (torch.stack(hs, dim=1), torch.stack(cs, dim=1))


class LayerNormLSTMCell(nn.Module):
    """An LSTM cell with layer normalisation (Ba et al. 2016), the controller of Franke et al. 2018 (ADNC):

        [i; f; g; o] = LN_gates(W [x; h_{t-1}]) + b     (each gate normalised over its H units)
        c_t = sigmoid(f) o c_{t-1} + sigmoid(i) o tanh(g),   h_t = sigmoid(o) o tanh(LN_c(c_t))

    Same call shape as nn.LSTMCell: cell(x [B, X], (h [B, H], c [B, H])) -> (h, c). `bias` holds b
    (gate order i, f, g, o as in nn.LSTMCell, so the forget bias is bias[H:2H]).
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight = nn.Linear(input_size + hidden_size, 4 * hidden_size, bias=False)
        self.gate_scale = nn.Parameter(torch.ones(4, hidden_size))
        self.bias = nn.Parameter(torch.zeros(4 * hidden_size))
        self.cell_norm = nn.LayerNorm(hidden_size)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state  # [B, H] each
        B, H = h.shape
        z = self.weight(torch.cat([x, h], dim=-1)).view(B, 4, H)  # [B, 4, H]
        z = torch.nn.functional.layer_norm(z, (H,)) * self.gate_scale  # normalised per gate
        i, f, g, o = (z.reshape(B, 4 * H) + self.bias).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(self.cell_norm(c)), c


class FeedForwardController(nn.Module):
    """A stack of tanh layers; no recurrent state of its own (the memory is its only state)."""

    def __init__(self, input_size: int, hidden_sizes: Sequence[int] = (256,)):
        super().__init__()
        layers: list[nn.Module] = []
        for size in hidden_sizes:
            layers += [nn.Linear(input_size, size), nn.Tanh()]
            input_size = size
        self.net = nn.Sequential(*layers)
        self.output_size = input_size

    def initial_state(self, batch_size: int, device=None, dtype=None) -> tuple:
        return ()

    def forward(self, x: Tensor, state: tuple) -> tuple[Tensor, tuple]:
        return self.net(x), state


def build_controller(kind: str, input_size: int, size: int, layers: int, layer_norm: bool = False) -> nn.Module:
    """'lstm' -> LSTMController(input_size, size, layers, layer_norm); 'ff' -> FeedForwardController(input_size,
    [size]*layers)."""
    if kind == "lstm":
        return LSTMController(input_size, size, layers, layer_norm)
    if kind in ("ff", "feedforward"):
        return FeedForwardController(input_size, [size] * layers)
    raise ValueError(f"unknown controller {kind!r}: use 'lstm', 'ff' or pass an nn.Module")
