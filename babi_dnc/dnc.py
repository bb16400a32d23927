"""The Differentiable Neural Computer: controller + memory + output layer, unrolled over time.

Per step (Graves et al. 2016, Methods):

    chi_t       = [x_t; r^1_{t-1}; ...; r^R_{t-1}]               controller input
    h_t         = controller(chi_t)
    xi_t        = W_xi h_t                                       interface vector (raw)
    v_t         = W_y h_t                                        controller output
    r_t, state  = memory(xi_t, state)                            see memory.py
    y_t         = v_t + W_r [r^1_t; ...; r^R_t]                  output

`DNCCell` is one step and has the controller call shape, so a DNC can itself be the controller of another
DNC. `DNC` unrolls a cell over a batch-first sequence [B, T, X] -> [B, T, Y]; the time loop is the only loop.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .controllers import build_controller
from .kernels import cpu_link_kernel
from .memory import TRACE_KEYS, Memory, MemoryState


class DNCState(NamedTuple):
    controller: Any  # the controller's own state (a nested tuple of batch-first tensors)
    memory: MemoryState
    read_vectors: Tensor  # [B, R, W]  r_t, fed to the controller at t + 1


class _ClipGradient(torch.autograd.Function):
    """Identity forward; backward clamps the gradient to [-bound, bound]."""

    @staticmethod
    def forward(ctx, x: Tensor, bound: float) -> Tensor:
        ctx.bound = bound
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad.clamp(-ctx.bound, ctx.bound), None


def clip_gradient(x: Tensor, bound: float | None) -> Tensor:
    """Clip the gradient flowing back through x to [-bound, bound] (no-op when bound is None)."""
    return x if bound is None or not x.requires_grad else _ClipGradient.apply(x, bound)


def tree_where(keep_new: Tensor, new: Any, old: Any) -> Any:
    """Per sample, take `new` where keep_new [B] is True and `old` elsewhere, through nested tuples."""
    if isinstance(new, Tensor):
        return torch.where(keep_new.view(-1, *([1] * (new.dim() - 1))), new, old)
    if isinstance(new, tuple) and hasattr(new, "_fields"):  # NamedTuple
        return type(new)(*(tree_where(keep_new, n, o) for n, o in zip(new, old, strict=True)))
    if isinstance(new, (tuple, list)):
        return type(new)(tree_where(keep_new, n, o) for n, o in zip(new, old, strict=True))
    raise TypeError(f"state leaves must be tensors or tuples, got {type(new).__name__}")


def clip_value(x: Tensor, bound: float | None) -> Tensor:
    """x clamped to [-bound, bound] (None: x unchanged)."""
    return x if bound is None else x.clamp(-bound, bound)


class DNCCell(nn.Module):
    """One step of the DNC: (x_t [B, X], state) -> (y_t [B, Y], state).

    Args:
        input_size, output_size: X and Y.
        controller: 'lstm', 'ff', or a factory `f(controller_input_size) -> nn.Module` with the
            controller call shape (see controllers.py). The controller input size is X + R*W.
        controller_size, controller_layers: size of the built-in controllers.
        memory_slots, word_size, read_heads: N, W, R.
        clip_activation_grad: clip the gradient on the controller's output activations to
            [-c, c] (the paper uses 10); None to turn off.
        layer_norm: layer-normalised LSTM controller (Franke et al. 2018).
        masked, deallocate, sharpness: the memory options of Csordás & Schmidhuber 2019 (see memory.py).
        interface_norm: layer normalisation of the raw interface vector W_xi h_t (Franke et al. 2018, ADNC).
        links: the temporal link matrix; False reads memory by content only (ADNC; see memory.py).
        clip_value: clamp the controller's output h_t and the DNC's output y_t to [-v, v] (DeepMind's dnc
            `clip_value`, one of ADNC's stabilisers); None (the paper) leaves them unbounded.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        controller: str | Callable[[int], nn.Module] = "lstm",
        controller_size: int = 256,
        controller_layers: int = 1,
        memory_slots: int = 256,
        word_size: int = 64,
        read_heads: int = 4,
        clip_activation_grad: float | None = 10.0,
        layer_norm: bool = False,
        masked: bool = False,
        deallocate: bool = False,
        sharpness: bool = False,
        interface_norm: bool = False,
        links: bool = True,
        clip_value: float | None = None,
    ):
        super().__init__()
        self.input_size, self.output_size = input_size, output_size
        self.read_heads, self.word_size = read_heads, word_size
        self.clip_activation_grad, self.clip_value = clip_activation_grad, clip_value
        self.memory = Memory(memory_slots, word_size, read_heads, masked=masked, deallocate=deallocate,
                             sharpness=sharpness, links=links)
        chi_size = input_size + read_heads * word_size
        if isinstance(controller, str):
            self.controller = build_controller(controller, chi_size, controller_size, controller_layers, layer_norm)
        else:
            self.controller = controller(chi_size)
        hidden = self.controller.output_size
        self.interface = nn.Linear(hidden, self.memory.interface_size)  # W_xi
        self.interface_norm = nn.LayerNorm(self.memory.interface_size) if interface_norm else None
        self.output = nn.Linear(hidden, output_size)  # W_y
        self.read_output = nn.Linear(read_heads * word_size, output_size, bias=False)  # W_r

    def initial_state(self, batch_size: int, device=None, dtype=None) -> DNCState:
        """Zero controller state (parameter dtype), zero memory state and read vectors (float32 or float64)."""
        param = next(self.parameters())
        device = device if device is not None else param.device
        dtype = dtype or (param.dtype if param.dtype == torch.float64 else torch.float32)
        memory = self.memory.initial_state(batch_size, device=device, dtype=dtype)
        reads = torch.zeros(batch_size, self.read_heads, self.word_size, device=device, dtype=dtype)
        return DNCState(self.controller.initial_state(batch_size, device, param.dtype), memory, reads)

    def forward(
        self, x: Tensor, state: DNCState, trace: dict | None = None, keep: Tensor | None = None
    ) -> tuple[Tensor, DNCState]:
        """One step. keep [B] bool: where False, the memory state is left as it was (see Memory.forward);
        the controller state and read vectors are the caller's to keep (DNC.core_step does)."""
        h, new_state = self.core(x, state, trace, keep)
        return self.readout(h, new_state.read_vectors), new_state  # [B, Y]

    def core(
        self, x: Tensor, state: DNCState, trace: dict | None = None, keep: Tensor | None = None
    ) -> tuple[Tensor, DNCState]:
        """The step up to the new read vectors: (h_t [B, H], state); `readout` makes y_t from them."""
        chi = torch.cat([x, state.read_vectors.flatten(1).to(x.dtype)], dim=-1)  # [B, X + R*W]
        h, controller_state = self.controller(chi, state.controller)  # [B, H]
        h = clip_value(clip_gradient(h, self.clip_activation_grad), self.clip_value)
        xi = self.interface(h)  # [B, interface_size]
        if self.interface_norm is not None:
            xi = self.interface_norm(xi)
        read_vectors, memory_state = self.memory(xi, state.memory, trace, keep)  # [B, R, W]
        return h, DNCState(controller_state, memory_state, read_vectors)

    def readout(self, h: Tensor, read_vectors: Tensor) -> Tensor:
        """y_t = W_y h_t + W_r [r^1_t; ...; r^R_t], for one step (h [B, H], read_vectors [B, R, W]) or for
        many at once ([B, T, H], [B, T, R, W]): nothing in it feeds back into the recurrence."""
        return clip_value(self.output(h) + self.read_output(read_vectors.flatten(-2).to(h.dtype)), self.clip_value)


class DNC(nn.Module):
    """The DNC unrolled over time: x [B, T, X] -> y [B, T, Y].

    forward(x, state=None, mask=None) -> (y, state):
        state: a DNCState to continue from (None: the zero state), so a story can be fed in pieces.
        mask: [B, T] bool, False on padding; padded steps leave the state untouched and output zeros.
    trace(x, state=None, mask=None) -> (y, state, trace): the same, uncompiled, with every memory quantity
        per step (memory.TRACE_KEYS), each [B, T, ...], detached.

    checkpoint_steps: when training, keep only the state at every `checkpoint_steps`-th step and recompute
        the steps in between during the backward pass (activation checkpointing over time): memory grows
        with T / checkpoint_steps + checkpoint_steps instead of T, for about one more forward pass of compute.
    Other constructor arguments are those of DNCCell.
    """

    def __init__(self, input_size: int, output_size: int, checkpoint_steps: int | None = None, **kwargs):
        super().__init__()
        self.cell = DNCCell(input_size, output_size, **kwargs)
        self.input_size, self.output_size = input_size, output_size
        self.checkpoint_steps = checkpoint_steps

    @property
    def memory(self) -> Memory:
        return self.cell.memory

    def initial_state(self, batch_size: int, device=None, dtype=None) -> DNCState:
        return self.cell.initial_state(batch_size, device, dtype)

    def forward(self, x: Tensor, state: DNCState | None = None, mask: Tensor | None = None):
        state = self.initial_state(x.shape[0], device=x.device) if state is None else state
        K, T = self.checkpoint_steps, x.shape[1]
        if not K or K >= T or not torch.is_grad_enabled():
            return self._unroll(x, state, mask)
        outputs = []
        for t0 in range(0, T, K):  # chunks of time, each recomputed in the backward pass
            m = None if mask is None else mask[:, t0 : t0 + K]
            y, state = checkpoint(self._unroll, x[:, t0 : t0 + K], state, m, use_reentrant=False)
            outputs.append(y)
        return torch.cat(outputs, dim=1), state

    def trace(self, x: Tensor, state: DNCState | None = None, mask: Tensor | None = None):
        """forward, also returning {name: [B, T, ...]} for every name of memory.TRACE_KEYS."""
        state = self.initial_state(x.shape[0], device=x.device) if state is None else state
        steps: list[dict] = []
        y, state = self._unroll(x, state, mask, steps)
        traced = {k: torch.stack([s[k] for s in steps], dim=1).detach().float() for k in TRACE_KEYS} if steps else {}
        return y, state, traced

    def compile_step(self, **options) -> None:
        """torch.compile one masked time step (`core_step`), not the unrolled loop: one graph serves every
        sequence length, and the fused step is faster on a CPU (BENCHMARKS.md). Traced runs stay uncompiled."""
        if any(p.device.type == "cpu" for p in self.parameters()):
            cpu_link_kernel()  # build (or load) the CPU link kernel now: its build cannot be traced
        with warnings.catch_warnings():  # torch's mkldnn helpers, which Inductor imports, define a ScriptModule
            warnings.filterwarnings(  # with the deprecated torch.jit.script_method: imported now, without its warning
                "ignore", message=".*torch.jit.script_method", category=DeprecationWarning)
            import torch.utils.mkldnn  # noqa: F401
        self._compiled_step = torch.compile(self.core_step, **options)

    def core_step(self, x: Tensor, state: DNCState, keep: Tensor | None = None, trace: dict | None = None):
        """One time step without the output layer: x [B, X] -> (h_t [B, H], state); where keep [B] is False
        the state is kept. The unrolled loop applies the output layer (DNCCell.readout) to all its steps at
        once afterwards: one matrix product instead of T small ones, forward and backward. For one step
        with its output y_t, call the cell: `dnc.cell(x, state)`."""
        h, new_state = self.cell.core(x, state, trace, keep)
        if keep is None:
            return h, new_state
        # The memory kept its own state for padded samples (without copying the link matrix).
        controller, reads = tree_where(
            keep, (new_state.controller, new_state.read_vectors), (state.controller, state.read_vectors)
        )
        return h, DNCState(controller, new_state.memory, reads)

    def _unroll(self, x: Tensor, state: DNCState, mask: Tensor | None, trace: list | None = None):
        step = self.core_step if trace is not None else getattr(self, "_compiled_step", self.core_step)
        hidden, reads = [], []
        for t in range(x.shape[1]):  # the time loop: the only loop in the model
            step_trace = {} if trace is not None else None
            h, state = step(x[:, t], state, None if mask is None else mask[:, t], step_trace)
            hidden.append(h)
            reads.append(state.read_vectors)
            if trace is not None:
                trace.append(step_trace)
        if not hidden:
            return x.new_zeros(x.shape[0], 0, self.output_size), state
        y = self.cell.readout(torch.stack(hidden, dim=1), torch.stack(reads, dim=1))  # [B, T, Y]
        if mask is not None:  # padded steps output zeros
            y = torch.where(mask.unsqueeze(-1), y, torch.zeros_like(y))
        return y, state


def compile_model(model: nn.Module, fallback: bool = True) -> None:
    """torch.compile the time step of `model` in place, if it has one (`compile_step`: a DNC, or a bAbI
    model around one); other models are left as they are. Where compiling fails (e.g. no C++ compiler on a
    CPU machine), torch logs a warning and runs the step eagerly instead of stopping the run; fallback=False
    lets the error through (benchmarks, checks)."""
    import torch._dynamo  # here, not at the top: importing it takes about a second, and only compiling needs it

    torch._dynamo.config.suppress_errors = fallback
    warnings.filterwarnings("ignore", message=".*torch._prims_common.check.*", category=FutureWarning)  # Inductor's own
    if hasattr(model, "compile_step"):
        model.compile_step()
