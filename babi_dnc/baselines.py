"""The LSTM baseline for bAbI (Graves et al. 2016, "bAbI task" in Methods: a 512-unit LSTM).

It has the DNC's call shape, so the training loop, checkpoints, evaluation and chat treat both alike:

    y, state = model(x [B, T, X], state=None, mask=None)            # y [B, T, Y]
    y, state, trace = model.trace(x, state, mask)                   # trace == {} (no memory to trace)

The recurrence is cuDNN's / ATen's fused `nn.LSTM` over packed sequences, so padding costs nothing and
the state after a padded story is the state at its last real step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class LSTMBaseline(nn.Module):
    """A (deep) LSTM with a linear output layer: x [B, T, X] -> y [B, T, Y].

    Args:
        input_size, output_size: X and Y.
        hidden_size: units per layer (512 in the paper).
        num_layers: stacked LSTM layers.

    forward(x, state=None, mask=None) -> (y, state):
        state: (h [L, B, H], c [L, B, H]) to continue from; None is the zero state.
        mask: [B, T] bool, True on real steps. Padding must come at the end of each row (a prefix mask,
            as `data.collate` builds it); padded steps output zeros and leave the state unchanged.
    """

    def __init__(self, input_size: int, output_size: int, hidden_size: int = 512, num_layers: int = 1):
        super().__init__()
        self.input_size, self.output_size = input_size, output_size
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.output = nn.Linear(hidden_size, output_size)

    def initial_state(self, batch_size: int, device=None, dtype=None) -> tuple[Tensor, Tensor]:
        param = next(self.parameters())
        shape = (self.num_layers, batch_size, self.hidden_size)
        device, dtype = device or param.device, dtype or param.dtype
        return torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype)

    def forward(self, x: Tensor, state=None, mask: Tensor | None = None):
        B, T, _ = x.shape
        if state is None:
            state = self.initial_state(B, device=x.device, dtype=x.dtype)
        if mask is None or T == 0:
            h, state = self.lstm(x, state)  # [B, T, H]
        else:
            lengths = mask.sum(1).cpu()  # [B]: one host sync, needed by pack_padded_sequence
            packed = pack_padded_sequence(x, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
            h, new_state = self.lstm(packed, state)
            h, _ = pad_packed_sequence(h, batch_first=True, total_length=T)  # [B, T, H], zeros on padding
            empty = (lengths == 0).to(x.device)  # rows with no real step keep their state
            state = tuple(torch.where(empty.view(1, -1, 1), old, new) for old, new in zip(state, new_state))
        y = self.output(h)  # [B, T, Y]
        if mask is not None:
            y = y * mask.unsqueeze(-1).to(y.dtype)
        return y, state

    def trace(self, x: Tensor, state=None, mask: Tensor | None = None):
        """forward and an empty trace: the LSTM has no memory to trace."""
        return (*self(x, state, mask), {})
