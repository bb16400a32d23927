"""Training steps replayed as CUDA graphs: the forward and the backward pass of a whole unrolled model, each
captured once per padded batch shape and then replayed, so that a step costs two graph launches instead of
a few hundred kernel launches per time step.

A batch of ids [B, T] (with its mask [B, T], False on padding) is padded to [B', T'], where T' is the first
of LENGTHS that is at least T (at most 1.5x longer: 16, 24, 32, 48, 64, ...) and B' the batch size of the
first capture that is at least B. Padded positions have mask False, so they leave the state unchanged and
output zeros (dnc.DNC); the logits [B, T, V] returned are those of the unpadded batch, equal to the
eager ones. bAbI's en-10k stories (median 72 words, 99% under 250, longest 820) then need about ten graphs.

    install_cuda_graphs(model)          # model.forward replays graphs while training; eager otherwise
    logits, _ = model(ids, mask=mask)   # as before; the state returned while training is None

Eager runs (the model's own forward, e.g. its compiled time step) where a graph cannot serve: in eval
mode or without gradients, for a given state, for T above `max_length`, on a CPU, and after a capture
has failed (one warning, then the rest of the run eagerly). `model.trace` never goes through graphs.

All graphs share one memory pool: the activations of one shape reuse the memory of another, so the graphs
of all lengths together need about what the longest one needs. That is safe when training steps do not
overlap: each forward is followed by its backward, and the gradients are consumed (optimizer step, then
zero_grad(set_to_none=True)) before the next forward, as in training.fit. The parameters must stay the same
tensors (load_state_dict copies into them; the optimizer updates them in place).
"""

from __future__ import annotations

import bisect
import inspect
import logging
import os
import warnings

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

LENGTHS = tuple(sorted(base << k for base in (16, 24) for k in range(9)))  # 16, 24, 32, 48, ..., 4096, 6144
MAX_LENGTH = 256  # longer batches (about 1% of bAbI's) run eagerly: a graph's activations grow with T
ENV_SWITCH = "BABI_DNC_CUDA_GRAPHS"


def padded_length(length: int, lengths: tuple[int, ...] = LENGTHS) -> int | None:
    """The first of `lengths` (sorted) that is at least `length`; None above the largest.
    Example: 72 -> 96, 96 -> 96, 97 -> 128."""
    i = bisect.bisect_left(lengths, length)
    return lengths[i] if i < len(lengths) else None


def pad_batch(ids: Tensor, mask: Tensor, rows: int, length: int) -> tuple[Tensor, Tensor]:
    """ids [B, T] (or inputs [B, T, X]) and mask [B, T] -> [rows, length, ...] (rows >= B, length >= T);
    new positions: zeros, mask False."""
    B, T = ids.shape[:2]
    if (B, T) == (rows, length):
        return ids, mask
    padded_ids = ids.new_zeros(rows, length, *ids.shape[2:])
    padded_mask = mask.new_zeros(rows, length)
    padded_ids[:B, :T] = ids
    padded_mask[:B, :T] = mask
    return padded_ids, padded_mask


class _Logits(nn.Module):
    """(ids, mask) -> logits: the tensors-only callable that make_graphed_callables captures."""

    def __init__(self, model: nn.Module, forward):
        super().__init__()
        self.model, self.forward_fn = model, forward

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        return self.forward_fn(ids, mask=mask)[0]


def _autocast_state() -> tuple[bool, torch.dtype]:
    try:  # torch >= 2.4
        return torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")
    except TypeError:
        return torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()


class GraphedForward:
    """A model's forward that replays captured CUDA graphs while training (see the module docstring).

    stats: {"captures": graphs captured, "replays": graphed calls, "eager": eager calls}.
    """

    def __init__(self, model: nn.Module, forward, lengths: tuple[int, ...] = LENGTHS, max_length: int = MAX_LENGTH,
                 warmup: int = 3):
        self.model, self.eager_forward = model, forward
        self.lengths, self.max_length, self.warmup = tuple(sorted(lengths)), max_length, warmup
        self.graphs: dict[tuple, nn.Module] = {}  # (rows, length, autocast) -> graphed _Logits
        self.pool = None
        self.failed: str | None = None
        self.stats = {"captures": 0, "replays": 0, "eager": 0}
        self.devices = ("cuda",)  # where graphs are captured (tests add "cpu", with a stand-in capture)

    def _graph_shape(self, ids: Tensor, state, mask) -> tuple[int, int] | None:
        """(rows, length) of the graph that serves this call, or None for an eager call."""
        if self.failed or state is not None or ids.device.type not in self.devices:
            return None
        if not (self.model.training and torch.is_grad_enabled()):
            return None
        B, T = ids.shape[:2]
        length = padded_length(T, self.lengths)
        if length is None or length > self.max_length or B == 0:
            return None
        rows = min((r for r, t, _ in self.graphs if t == length and r >= B), default=B)
        return rows, length

    def __call__(self, ids: Tensor, state=None, mask: Tensor | None = None):
        shape = self._graph_shape(ids, state, mask)
        if shape is None:
            self.stats["eager"] += 1
            return self.eager_forward(ids, state=state, mask=mask)
        B, T = ids.shape[:2]
        if mask is None:
            mask = ids.new_ones(B, T, dtype=torch.bool)
        padded_ids, padded_mask = pad_batch(ids, mask, *shape)
        key = (*shape, _autocast_state())
        graphed = self.graphs.get(key)
        if graphed is None:
            graphed = self._capture(key, padded_ids, padded_mask)
            if graphed is None:
                self.stats["eager"] += 1
                return self.eager_forward(ids, state=state, mask=mask)
        self.stats["replays"] += 1
        return graphed(padded_ids, padded_mask)[:B, :T], None

    def _capture(self, key: tuple, ids: Tensor, mask: Tensor) -> nn.Module | None:
        """Capture forward and backward for one shape; on failure warn once and return None."""
        (enabled, dtype) = key[2]
        try:
            if self.pool is None:
                self.pool = torch.cuda.graph_pool_handle()
            callable_ = _Logits(self.model, self.eager_forward)
            capture = torch.cuda.make_graphed_callables
            shared = {"pool": self.pool} if "pool" in inspect.signature(capture).parameters else {}
            # make_graphed_callables refuses autocast's weight cache (its casts would be captured once); the
            # sample tensors become the graphs' static inputs, so they are copies, not the caller's batch
            with torch.autocast("cuda", dtype=dtype, enabled=enabled, cache_enabled=False):
                graphed = capture(callable_, (ids.clone(), mask.clone()), num_warmup_iters=self.warmup,
                                  allow_unused_input=True, **shared)
        except Exception as e:  # a capture error: the run goes on eagerly
            self.failed = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            warnings.warn(
                f"CUDA graph capture of the training step failed ({self.failed}); training continues with "
                f"the eager step. Set {ENV_SWITCH}=0 to skip the attempt.",
                stacklevel=3,
            )
            return None
        self.graphs[key] = graphed
        self.stats["captures"] += 1
        log.info("captured the training step as CUDA graphs for batches of %d x %d", key[0], key[1])
        return graphed


def install_cuda_graphs(model: nn.Module, lengths: tuple[int, ...] = LENGTHS, max_length: int = MAX_LENGTH,
                        warmup: int = 3, devices: tuple[str, ...] = ("cuda",)) -> GraphedForward | None:
    """Make `model(ids, mask=mask)` replay CUDA graphs while training (in place; returns the GraphedForward),
    for a model on a CUDA device. Returns None and changes nothing where graphs do not apply: a model on a
    CPU, under torch.distributed (DDP), with think steps (their count makes the length data-dependent), or
    with BABI_DNC_CUDA_GRAPHS=0; the DDP and think-step cases say so in one warning. (`devices`: tests add
    "cpu".)"""
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    param = next(model.parameters(), None)
    if param is None or param.device.type not in devices:
        return None
    if getattr(model, "think_steps", 0):
        warnings.warn("CUDA graphs do not apply to a model with think steps (the step count depends on the "
                      "data): the training step runs eagerly.", stacklevel=2)
        return None
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # DDP's gradient hooks and graphs captured per process: not supported here
        warnings.warn("CUDA graphs are not used under torch.distributed (DDP): the training step runs eagerly.",
                      stacklevel=2)
        return None
    if isinstance(model.forward, GraphedForward):
        return model.forward
    graphed = GraphedForward(model, model.forward, lengths, max_length, warmup)
    graphed.devices = devices
    model.forward = graphed  # an instance attribute: nn.Module.__call__ calls it; state_dict is unchanged
    return graphed
