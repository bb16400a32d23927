"""Copy and repeat-copy sequences in the NTM/DNC format (Graves et al. 2014, 2016).

One sample, for a pattern of L random binary vectors of `bits` bits repeated K times
(copy is the case K = 1):

    step       0        1 .. L       L+1          L+2 .. L+1+K*L       L+2+K*L (repeat-copy only)
    input    start     pattern    end / count       (nothing)               (nothing)
    target                                       pattern, K times          end-of-output flag

Input channels (`bits + 2`): the pattern bits, then a start delimiter, then the end delimiter, which for
repeat-copy carries the repeat count normalised to (0, 1] as K / max_repeats (NTM: "the number of
repetitions ... on a separate input channel, normalised"). Nothing is given during recall.
Target channels: the pattern bits; repeat-copy adds one end-of-output channel that must be 1 on the step
after the last copy (so the model has to count the repeats, as in the NTM paper and DeepMind's dnc repo).
Loss and bit errors count on the recall phase only (`loss_mask`); padding to the longest sample of a
batch is marked by `mask` (False = padding), which the DNC uses to leave its state unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from babi_dnc.errors import UserError

TASKS = ("copy", "repeat-copy")


@dataclass
class CopyTaskConfig:
    """What sequences to make: the task, the pattern width and the range of lengths and repeats."""

    task: str = "copy"  # "copy" | "repeat-copy"
    bits: int = 6  # width of each random binary vector
    min_length: int = 1  # pattern length range (number of vectors)
    max_length: int = 10
    max_repeats: int = 1  # repeat-copy: repeats drawn from 1..max_repeats (copy: always 1)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UserError(f"Unknown copy task {self.task!r}: use one of {', '.join(TASKS)}.")
        if self.task == "copy":
            self.max_repeats = 1
        if self.bits < 1 or self.max_repeats < 1 or not 1 <= self.min_length <= self.max_length:
            raise UserError(
                "Copy task sizes must satisfy bits >= 1, max_repeats >= 1 and 1 <= min_length <= max_length."
            )

    @property
    def input_size(self) -> int:
        """Pattern bits + start delimiter + end delimiter / repeat count."""
        return self.bits + 2

    @property
    def output_size(self) -> int:
        """Pattern bits (+ the end-of-output flag for repeat-copy)."""
        return self.bits + (1 if self.task == "repeat-copy" else 0)

    @property
    def end_flag(self) -> bool:
        return self.task == "repeat-copy"


def sequence_length(length: int, repeats: int, end_flag: bool) -> int:
    """Number of steps of one sample: start + pattern + end/count + recall (+ end-of-output step)."""
    return 2 + length + repeats * length + int(end_flag)


def make_batch(
    patterns: torch.Tensor, lengths: torch.Tensor, repeats: torch.Tensor, max_repeats: int, end_flag: bool
) -> dict[str, torch.Tensor]:
    """Lay out a batch of patterns in the copy format.

    Args:
      patterns: [B, Lmax, bits] 0/1 floats; sample b uses its first lengths[b] vectors.
      lengths: [B] long, pattern lengths.  repeats: [B] long, numbers of copies.
      max_repeats: normaliser of the repeat count.  end_flag: add the end-of-output target channel.
    Returns dict with inputs [B, T, bits+2], targets [B, T, bits(+1)], mask [B, T] bool (False = padding),
      loss_mask [B, T] bool (recall steps), lengths [B], repeats [B].
    """
    B, _, bits = patterns.shape
    steps = [sequence_length(int(n), int(k), end_flag) for n, k in zip(lengths, repeats, strict=True)]
    T = max(steps)
    inputs = torch.zeros(B, T, bits + 2)
    targets = torch.zeros(B, T, bits + int(end_flag))
    mask = torch.zeros(B, T, dtype=torch.bool)
    loss_mask = torch.zeros(B, T, dtype=torch.bool)
    for b in range(B):
        n, k = int(lengths[b]), int(repeats[b])
        pattern = patterns[b, :n]  # [n, bits]
        inputs[b, 0, bits] = 1.0  # start delimiter
        inputs[b, 1 : 1 + n, :bits] = pattern
        inputs[b, 1 + n, bits + 1] = k / max_repeats  # end delimiter = normalised repeat count
        recall = 2 + n  # first recall step
        targets[b, recall : recall + k * n, :bits] = pattern.repeat(k, 1)
        if end_flag:
            targets[b, recall + k * n, bits] = 1.0
        loss_mask[b, recall : steps[b]] = True
        mask[b, : steps[b]] = True
    return dict(inputs=inputs, targets=targets, mask=mask, loss_mask=loss_mask, lengths=lengths, repeats=repeats)


def sample_batch(
    config: CopyTaskConfig,
    batch_size: int,
    max_length: int,
    max_repeats: int,
    generator: torch.Generator,
    min_length: int | None = None,
    min_repeats: int = 1,
) -> dict[str, torch.Tensor]:
    """Draw a batch: lengths uniform in [min_length, max_length], repeats uniform in [min_repeats,
    max_repeats], bits fair coin flips; all from `generator` (deterministic given its state)."""
    low = config.min_length if min_length is None else min_length
    lengths = torch.randint(low, max_length + 1, (batch_size,), generator=generator)
    repeats = torch.randint(min_repeats, max_repeats + 1, (batch_size,), generator=generator)
    patterns = torch.randint(0, 2, (batch_size, max_length, config.bits), generator=generator).float()
    return make_batch(patterns, lengths, repeats, config.max_repeats, config.end_flag)


def recall_loss(logits: torch.Tensor, targets: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Sigmoid binary cross-entropy, mean over the target bits of the recall steps.

    logits, targets [B, T, Y]; loss_mask [B, T] bool.
    """
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # [B, T, Y]
    weight = loss_mask.unsqueeze(-1).to(bce.dtype)  # [B, T, 1]
    return (bce * weight).sum() / (weight.sum() * bce.shape[-1]).clamp_min(1.0)


def bit_errors(logits: torch.Tensor, targets: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Wrong bits per sequence on the recall steps: [B] float.

    A bit is on when its logit is > 0 (sigmoid > 0.5). logits, targets [B, T, Y]; loss_mask [B, T].
    """
    wrong = ((logits > 0).to(targets.dtype) != targets).to(torch.float32)  # [B, T, Y]
    return (wrong * loss_mask.unsqueeze(-1).to(torch.float32)).sum(dim=(1, 2))  # [B]
