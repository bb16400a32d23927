"""The backward reader: a bidirectional input for the DNC that never looks past a question.

BiADNC (Franke et al. 2018) runs a backward LSTM over the whole story and feeds its output, beside the
forward input, to the memory-augmented network; that took positional reasoning (task 17) and path finding
(19) from failed to solved. Over the whole story, the answer to a question would depend on the sentences
told after it, which `chat` never has. Here the backward LSTM restarts at each question: the story is cut
into segments, each ending at a question's last answer slot '-', and within a segment the reader runs from
its end back to its start, so that at every word of a segment it has read the question that ends it:

    segment k     = the steps after question k-1's last '-' up to and including question k's last '-'
    b_t           = LSTM_back(x_t, b_{t+1})   within t's segment, from its last step backwards (zero state)
    DNC input     = [x_t; b_t]

An answer therefore depends only on the story up to its question, as it does in chat. The steps after the
last question (a story still being told) form a segment of their own; no answer is read there.

    reader = BackwardReader(input_size=64, hidden_size=64, answer_id=vocab.answer_id)
    b = reader(x, ids, mask)      # x [B, T, X], ids [B, T] -> b [B, T, H]

scope="story" is BiADNC's reader as published, for comparison only: one segment per story, read from the
story's last step back, so that an answer also sees the sentences told after its question. Its eval numbers
are not what chat can answer (chat refuses such a model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SCOPES = ("question", "story")  # what one backward pass reads: a question's segment, or the whole story


def question_segments(ids: Tensor, answer_id: int, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Which segment each step is in, and how far it is from its segment's last step.

    ids [B, T] long; a question's answer slots are a run of `answer_id` ids (masked-out steps are not).
    Returns segment [B, T] long (the number of questions ended before t) and back [B, T] long (the last
    step of t's segment minus t: 0 at a question's last '-', counting up towards the segment's start).
    """
    slot = ids == answer_id if mask is None else (ids == answer_id) & mask  # [B, T]
    last_slot = slot & ~F.pad(slot[:, 1:], (0, 1))  # [B, T] a question's last '-'
    segment = F.pad(last_slot.long().cumsum(1)[:, :-1], (1, 0))  # [B, T]
    return segment, _steps_to_end(segment)


def story_segments(ids: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """question_segments for a reader of the whole story: segment [B, T] is 0 on the story's steps and 1 on
    the padding after it (mask False), back [B, T] the steps from t to its segment's last step."""
    segment = torch.zeros_like(ids) if mask is None else (~mask).long()  # [B, T]
    return segment, _steps_to_end(segment)


def _steps_to_end(segment: Tensor) -> Tensor:
    """segment [B, T] long, non-decreasing along T -> the last step of t's segment minus t [B, T]."""
    B, T = segment.shape
    steps = torch.arange(T, device=segment.device).expand(B, T)  # [B, T]
    segment_end = torch.zeros(B, T + 1, dtype=torch.long, device=segment.device)  # [B, K<=T+1]
    segment_end = segment_end.scatter_reduce(1, segment, steps, reduce="amax", include_self=False)
    return segment_end.gather(1, segment) - steps


def reverse_segments(segment: Tensor, back: Tensor) -> tuple[Tensor, Tensor]:
    """Where each step goes when every segment is reversed in place, and where segments then start.

    segment, back [B, T] (from question_segments) -> (source [B, T]: the step read at t, first [B, T] bool:
    t starts a reversed segment, i.e. holds a question's last '-' or the story's last step). Reversing
    twice is the identity: source.gather(1, source) = t.
    """
    T = segment.shape[1]
    steps = torch.arange(T, device=segment.device).expand_as(segment)  # [B, T]
    segment_end = steps + back  # [B, T] the last step of t's segment
    starts = F.pad(segment[:, 1:] != segment[:, :-1], (1, 0), value=True)  # [B, T] t starts its segment
    segment_start = torch.cummax(torch.where(starts, steps, torch.zeros_like(steps)), dim=1).values  # [B, T]
    return segment_start + segment_end - steps, starts


class BackwardReader(nn.Module):
    """An LSTM that reads every segment of the input backwards from its question (see the module docstring).

    Args:
        input_size: X, the size of the word vectors it reads.
        hidden_size: H, the size of its output at every step.
        answer_id: the answer slot's word id ('-'), which marks where a question ends.
        scope: "question" (restart at every question: answers see the story up to their question only) or
            "story" (BiADNC's pass over the whole story, for comparison: answers also see what follows).
    """

    def __init__(self, input_size: int, hidden_size: int, answer_id: int, scope: str = "question"):
        super().__init__()
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
        self.cell = nn.LSTMCell(input_size, hidden_size)
        self.hidden_size, self.answer_id, self.scope = hidden_size, answer_id, scope

    def segments(self, ids: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(segment, back) [B, T] each: the stretches read backwards in one go (question_segments)."""
        if self.scope == "story":
            return story_segments(ids, mask)
        return question_segments(ids, self.answer_id, mask)

    def forward(self, x: Tensor, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        """x [B, T, X], ids [B, T], mask [B, T] or None -> b [B, T, H].

        Every segment is reversed in place; one LSTM pass over the whole reversed sequence, its state set to
        zero where a reversed segment starts, reads each segment from its question back to its start; the
        outputs are put back in the original order. (One pass of T steps over the batch: a padded grid of all
        segments, or a packed sequence, costs several times more on a CPU.)
        """
        B, T, _ = x.shape
        source, first = reverse_segments(*self.segments(ids, mask))  # [B, T] each
        x_reversed = x.gather(1, source.unsqueeze(-1).expand_as(x))  # [B, T, X]
        cell = self.cell
        gates_x = F.linear(x_reversed, cell.weight_ih, cell.bias_ih + cell.bias_hh)  # [B, T, 4H]
        keep = (~first).unsqueeze(-1).to(x.dtype).unbind(1)  # T x [B, 1]
        h = c = x.new_zeros(B, self.hidden_size)
        outputs = []
        for t, gates_t in enumerate(gates_x.unbind(1)):  # the time loop (unbind: one backward for all steps)
            h, c = h * keep[t], c * keep[t]
            i, f, g, o = (gates_t + F.linear(h, cell.weight_hh)).chunk(4, dim=-1)  # [B, H] each
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        if not outputs:
            return x.new_zeros(B, 0, self.hidden_size)
        out = torch.stack(outputs, dim=1)  # [B, T, H] in reversed order
        return out.gather(1, source.unsqueeze(-1).expand(B, T, self.hidden_size))  # [B, T, H]


__all__ = ["SCOPES", "question_segments", "story_segments", "reverse_segments", "BackwardReader"]
