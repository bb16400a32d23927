"""The bAbI models: a word-level input layer, the DNC or the LSTM baseline, and a vocabulary-sized output.

    model = build_model(ModelConfig(...), vocab_size)      # or build_model(PRESETS["paper"], V)
    logits, state = model(ids [B, T] long, state=None, mask=None)           # logits [B, T, V]
    logits, state, trace = model.trace(ids, state, mask)                    # trace: memory.TRACE_KEYS
    build_model(ModelConfig(think_steps=2), V, answer_id=vocab.answer_id)   # 2 empty steps before answers

Input (the paper's encoding): each word is a one-hot vector of size V (V = 159 on en-10k), so the unknown
word id V (one past the vocabulary) is the all-zero vector; or, with `embedding=d`, a learned
`nn.Embedding(V + 1, d)` whose last row is the unknown word. Output: V logits per step (the softmax is in
the loss). Padded steps (mask False) output zeros and leave the state unchanged.

Presets (`PRESETS[name]`, model fields only; each has a training recipe of the same name in
`babi_task.TRAIN_PRESETS`; what they reach is in README.md and BENCHMARKS.md):

    paper  the paper's DNC1: LSTM controller 256, memory 256 x 64, 4 read heads, activation-gradient
           clipping to [-10, 10]; LSTM baseline 512 units.
    small  one task on a CPU: LSTM controller 256, memory 16 x 16, 1 read head, a learned 64-wide word
           embedding; LSTM baseline 256 units. Its recipe adds Adam with warm-up and entity permutation
           (augment.py), so that a task's 1,800 training stories cannot simply be memorised.
    joint  all 20 tasks at once on a CPU: a layer-normalised LSTM controller 256 (Franke et al. 2018),
           memory 32 x 32 with 4 read heads, masked content addressing and de-allocation (Csordás &
           Schmidhuber 2019), a learned 64-wide embedding; LSTM baseline 512 units (the paper's). Its
           recipe: Adam, cosine decay, entity permutation.
    tiny   a few thousand parameters, for tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .baselines import LSTMBaseline
from .config import JsonConfig, flags, option
from .controllers import LayerNormLSTMCell
from .dnc import DNC, compile_model
from .errors import UserError
from .reader import SCOPES, BackwardReader

MODELS = ("dnc", "lstm")


@dataclass
class ModelConfig(JsonConfig):
    """What to build; saved as config.json["model"] in every run directory."""

    model: str = option("dnc", "--model", fixed=True)  # "dnc" or "lstm" (the baseline)
    # DNC
    controller: str = "lstm"  # "lstm" or "ff"
    controller_size: int = option(256, "--controller-size", fixed=True)
    controller_layers: int = 1
    memory_slots: int = option(256, "--memory-slots", fixed=True)  # N
    word_size: int = option(64, "--word-size", fixed=True)  # W
    read_heads: int = option(4, "--read-heads", fixed=True)  # R
    clip_activation_grad: float | None = 10.0  # the paper's clip of the controller's activation gradients
    checkpoint_steps: int | None = None  # recompute memory in chunks of this many steps (saves GPU memory)
    # LSTM baseline
    lstm_size: int = option(512, "--lstm-size", fixed=True)
    lstm_layers: int = 1
    # input layer: None = one-hot (the paper), d = learned embedding of size d
    embedding: int | None = option(None, "--embedding", fixed=True)
    # initial bias of every LSTM forget gate (controller and baseline), as in Sonnet's LSTM that DeepMind's
    # DNC uses (forget_bias=1.0): memories in the cell state then decay slowly from the start of training
    forget_bias: float = 1.0
    # dropout on the controller's direct path to the output (W_y h), so that answers must come through the
    # memory reads (W_r r): the "bypass dropout" of Franke et al. 2018 (rsDNC); 0 = the paper's DNC
    bypass_dropout: float = option(0.0, "--bypass-dropout", fixed=True)
    # layer-normalised LSTM controller (Franke et al. 2018, ADNC); False = the paper's LSTM
    layer_norm: bool = False
    # the memory improvements of Csordás & Schmidhuber 2019 (DNC-MD): masked content addressing,
    # de-allocation by wiping freed cells, and sharpened directional weightings; False = the paper's memory
    masked: bool = False
    deallocate: bool = False
    sharpness: bool = option(False, "--sharpness", fixed=True)
    # ADNC's stabilisers (Franke et al. 2018): layer norm on the raw interface vector W_xi h_t, and a memory
    # read by content only (no temporal links); False / True = the paper's DNC
    interface_norm: bool = option(False, "--interface-norm", fixed=True)
    links: bool = option(True, "--links", fixed=True)
    # empty input steps before each question's answer slots, in which the model can read memory once
    # more before it must answer (the input is the zero vector; outputs there are not read); 0 = none
    think_steps: int = option(0, "--think-steps", fixed=True)
    # a backward LSTM of this size over each question's segment of the story, its output joined to every
    # word's input (reader.py: BiADNC's backward pass, restarted at each question); 0 = none, the paper
    backward_reader: int = option(0, "--backward-reader", fixed=True)
    # what one backward pass reads: "question" (restarted at every question: an answer sees the story up to
    # its question, as in chat) or "story" (BiADNC's pass over the whole story, for comparison; chat refuses it)
    reader_scope: str = option("question", "--reader-scope", fixed=True)
    # the controller's output and the DNC's output clamped to [-v, v] (DeepMind's dnc clip_value, one of ADNC's
    # stabilisers); None = the paper's DNC
    clip_value: float | None = option(None, "--clip-value", fixed=True)

    def check(self) -> None:
        """UserError naming the first setting that cannot be built, as its `train` option. The one check of
        these rules: a new run's settings (after a resumed run's saved ones are merged), build_model, and a
        saved config.json (checkpoint.config_section) all call it."""
        if self.model not in MODELS:
            raise UserError(f"--model must be {' or '.join(MODELS)}, not {self.model!r}.")
        for name in ("think_steps", "backward_reader"):
            if getattr(self, name) < 0:
                raise UserError(f"{flags(ModelConfig)[name]} must be 0 or more, not {getattr(self, name)!r}.")
        if self.sharpness and not self.links:
            raise UserError("--sharpness sharpens the temporal links' weightings, so leave it out with --no-links.")
        if self.reader_scope not in SCOPES:
            raise UserError(f"--reader-scope must be {' or '.join(SCOPES)}, not {self.reader_scope!r}.")
        if self.reader_scope != "question" and not self.backward_reader:
            raise UserError(f"--reader-scope {self.reader_scope} is the backward reader's: give --backward-reader N "
                            "as well.")


PRESETS: dict[str, ModelConfig] = {
    "paper": ModelConfig(
        controller_size=256, memory_slots=256, word_size=64, read_heads=4, clip_activation_grad=10.0,
        lstm_size=512,
    ),
    "small": ModelConfig(
        controller_size=256, memory_slots=16, word_size=16, read_heads=1, clip_activation_grad=10.0,
        lstm_size=256, embedding=64,
    ),
    "joint": ModelConfig(
        controller_size=256, memory_slots=32, word_size=32, read_heads=4, clip_activation_grad=10.0,
        lstm_size=512, embedding=64, layer_norm=True, masked=True, deallocate=True,
    ),
    "tiny": ModelConfig(
        controller_size=16, memory_slots=8, word_size=4, read_heads=1, clip_activation_grad=10.0,
        lstm_size=16,
    ),
}


def preset(name: str, model: str = "dnc", **overrides) -> ModelConfig:
    """PRESETS[name] for `model` ("dnc" or "lstm"), with any field overridden (None values are ignored)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: use one of {sorted(PRESETS)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(PRESETS[name], model=model, **changes)


def describe_model(mc: ModelConfig, details: bool = False) -> str:
    """A model config in words: "DNC (memory 32 x 32, 2 read heads)" or "LSTM (512 units)"; with `details`,
    also the controller and the input, e.g. "DNC (memory 32 x 32, 2 read heads), lstm controller 256,
    embedding 64"."""
    if mc.model == "dnc":
        heads = mc.read_heads
        text = f"DNC (memory {mc.memory_slots} x {mc.word_size}, {heads} read head{'s' * (heads != 1)})"
        options = {"layer norm": mc.layer_norm, "masked addressing": mc.masked, "de-allocation": mc.deallocate,
                   "link sharpness": mc.sharpness, "interface layer norm": mc.interface_norm,
                   "no temporal links": not mc.links}
        extra = [f"{mc.controller} controller {mc.controller_size}"]
        extra += [name for name, on in options.items() if on]
        if mc.bypass_dropout:
            extra.append(f"bypass dropout {mc.bypass_dropout:g}")
        if mc.clip_value is not None:
            extra.append(f"outputs clipped to ±{mc.clip_value:g}")
    else:
        layers = mc.lstm_layers
        text = f"LSTM ({f'{layers} x ' if layers != 1 else ''}{mc.lstm_size} units)"
        extra = []
    extra.append(f"embedding {mc.embedding}" if mc.embedding else "one-hot input")
    if mc.backward_reader:
        whole = " over the whole story (sees past each question)" if mc.reader_scope == "story" else ""
        extra.append(f"backward reader {mc.backward_reader}{whole}")
    if mc.think_steps:
        extra.append(f"{mc.think_steps} think step{'s' * (mc.think_steps != 1)}")
    return ", ".join([text, *extra]) if details else text


def insert_think_steps(ids: Tensor, mask: Tensor | None, answer_id: int, steps: int):
    """Make room for `steps` empty input steps before the first answer slot of every question.

    ids [B, T] long, mask [B, T] bool or None; a question's answer slots are a run of `answer_id` ids.
    Returns (ids [B, T'], mask [B, T'], think [B, T'] bool: the inserted steps, positions [B, T]:
    where each original step went), T' = T + steps x (most questions in one story). An inserted step takes
    the mask of the answer slot after it; steps past a row's last step are padding (mask False; also
    without a mask, so that a story with fewer questions than another in its batch ends where it did). Vectorised:
    the source of each new step is found by a batched searchsorted over `positions`.
    """
    B, T = ids.shape
    if T == 0 or steps == 0:
        return ids, mask, torch.zeros_like(ids, dtype=torch.bool), torch.arange(T, device=ids.device).expand(B, T)
    real = ids == answer_id if mask is None else (ids == answer_id) & mask
    first = real & ~F.pad(real, (1, 0))[:, :T]  # [B, T] the first slot of each question
    positions = torch.arange(T, device=ids.device) + steps * first.long().cumsum(1)  # [B, T]
    T_new = T + steps * int(first.sum(1).max())
    new = torch.arange(T_new, device=ids.device).expand(B, T_new).contiguous()  # [B, T']
    source = torch.searchsorted(positions, new).clamp(max=T - 1)  # [B, T'] the original step at or after
    is_original = positions.gather(1, source) == new
    within = new <= positions[:, -1:]  # not past the last original step
    think = ~is_original & within
    ids_new = torch.where(is_original, ids.gather(1, source), torch.zeros_like(new))
    mask_new = within if mask is None else mask.gather(1, source) & within
    return ids_new, mask_new, think, positions


def take_steps(x: Tensor, positions: Tensor) -> Tensor:
    """x [B, T', ...] at the time steps `positions` [B, T] -> [B, T, ...] (undoes insert_think_steps)."""
    index = positions.view(*positions.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return x.gather(1, index)


class BabiModel(nn.Module):
    """Word ids -> input vectors -> core (DNC or LSTM) -> V logits per step.

    `core` is any module with the DNC call shape: core(x [B, T, X], state, mask) -> (y, state), and
    core.trace(x, state, mask) -> (y, state, trace).
    With a `reader` (reader.BackwardReader) every input vector is joined by the reader's output [B, T, H].
    With `think_steps` > 0 the core also runs that many zero-input steps before each question's answer
    slots (ids == answer_id); logits and trace come back at the original steps only, so callers see [B, T].
    """

    def __init__(self, core: nn.Module, vocab_size: int, embedding: int | None = None, think_steps: int = 0,
                 answer_id: int | None = None, reader: nn.Module | None = None):
        super().__init__()
        if think_steps and answer_id is None:
            raise ValueError("think steps need the answer slot's word id (answer_id)")
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size + 1, embedding) if embedding else None  # last row: unknown
        # one-hot rows by indexing (F.one_hot checks its ids on the host, a CUDA synchronisation); row V: zeros
        self.register_buffer("one_hot", torch.eye(vocab_size + 1, vocab_size), persistent=False)
        self.reader = reader
        self.core = core
        self.think_steps, self.answer_id = think_steps, answer_id

    def encode(self, ids: Tensor) -> Tensor:
        """ids [B, T] long in [0, V] -> inputs [B, T, X] float; id V (unknown) is a zero one-hot vector."""
        if self.embed is not None:
            return self.embed(ids)
        return self.one_hot[ids]  # [B, T, V]

    def inputs(self, ids: Tensor, mask: Tensor | None = None, think: Tensor | None = None) -> Tensor:
        """ids [B, T] -> the core's inputs [B, T, X (+ H)]: the word vectors (zero at think steps), joined by
        the backward reader's output when there is a reader."""
        x = self.encode(ids)
        if think is not None:
            x = x.masked_fill(think.unsqueeze(-1), 0.0)  # empty input while thinking
        if self.reader is not None:
            x = torch.cat([x, self.reader(x, ids, mask)], dim=-1)
        return x

    def initial_state(self, batch_size: int, device=None, dtype=None):
        return self.core.initial_state(batch_size, device=device, dtype=dtype)

    @property
    def has_memory(self) -> bool:
        """Whether the core is a DNC, with a memory to trace and plot (the LSTM baseline has none)."""
        return isinstance(self.core, DNC)

    def forward(self, ids: Tensor, state=None, mask: Tensor | None = None):
        """ids [B, T] -> (logits [B, T, V], state)."""
        if not self.think_steps:
            return self.core(self.inputs(ids, mask), state, mask)
        ids, mask, think, positions = insert_think_steps(ids, mask, self.answer_id, self.think_steps)
        y, state = self.core(self.inputs(ids, mask, think), state, mask)  # [B, T', V]
        return take_steps(y, positions), state

    def trace(self, ids: Tensor, state=None, mask: Tensor | None = None):
        """forward, also returning the core's trace ({} for the LSTM), at the original steps."""
        if not self.think_steps:
            return self.core.trace(self.inputs(ids, mask), state, mask)
        ids, mask, think, positions = insert_think_steps(ids, mask, self.answer_id, self.think_steps)
        y, state, traced = self.core.trace(self.inputs(ids, mask, think), state, mask)
        return take_steps(y, positions), state, {k: take_steps(v, positions) for k, v in traced.items()}

    def compile_step(self) -> None:
        """torch.compile the core's time step (a DNC's; the LSTM baseline has none: nn.LSTM already runs
        the whole sequence as one fused operation)."""
        if hasattr(self.core, "compile_step"):
            self.core.compile_step()


def build_model(config: ModelConfig, vocab_size: int, answer_id: int | None = None) -> BabiModel:
    """The model `config` describes, for a vocabulary of `vocab_size` words (input and output V-way);
    `answer_id` (the answer slot's word id) is needed only with think steps or a backward reader."""
    config.check()
    if config.backward_reader and answer_id is None:
        raise ValueError("a backward reader needs the answer slot's word id (answer_id)")
    word_vector = config.embedding or vocab_size
    input_size = word_vector + config.backward_reader
    if config.model == "dnc":
        core = DNC(
            input_size, vocab_size,
            controller=config.controller, controller_size=config.controller_size,
            controller_layers=config.controller_layers, memory_slots=config.memory_slots,
            word_size=config.word_size, read_heads=config.read_heads,
            clip_activation_grad=config.clip_activation_grad, checkpoint_steps=config.checkpoint_steps,
            layer_norm=config.layer_norm, masked=config.masked, deallocate=config.deallocate,
            sharpness=config.sharpness, interface_norm=config.interface_norm, links=config.links,
            clip_value=config.clip_value,
        )
    else:
        core = LSTMBaseline(input_size, vocab_size, hidden_size=config.lstm_size, num_layers=config.lstm_layers)
    if config.model == "dnc" and config.bypass_dropout > 0:
        core.cell.output = BypassDropoutLinear(core.cell.output, config.bypass_dropout)
    reader = BackwardReader(word_vector, config.backward_reader, answer_id, config.reader_scope) \
        if config.backward_reader else None
    model = BabiModel(core, vocab_size, config.embedding, config.think_steps, answer_id, reader)
    init_forget_bias(model, config.forget_bias)
    return model


class BypassDropoutLinear(nn.Linear):
    """The DNC's W_y with dropout on its input h while training; same parameters (and state_dict names)."""

    def __init__(self, linear: nn.Linear, p: float):
        super().__init__(linear.in_features, linear.out_features, bias=linear.bias is not None)
        self.load_state_dict(linear.state_dict())
        self.p = p

    def forward(self, h: Tensor) -> Tensor:
        return super().forward(F.dropout(h, self.p, self.training))


def init_forget_bias(module: nn.Module, value: float) -> None:
    """Set the forget-gate bias of every nn.LSTM / nn.LSTMCell in `module` to `value` (gate order i, f, g, o:
    bias_ih[H:2H] = value, bias_hh[H:2H] = 0); the other biases keep their initialisation."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, LayerNormLSTMCell):
                m.bias[m.hidden_size : 2 * m.hidden_size] = value
            elif isinstance(m, (nn.LSTM, nn.LSTMCell)):
                H = m.hidden_size
                for name, p in m.named_parameters():
                    if name.startswith("bias_ih"):
                        p[H : 2 * H] = value
                    elif name.startswith("bias_hh"):
                        p[H : 2 * H] = 0.0


__all__ = [
    "MODELS", "ModelConfig", "PRESETS", "preset", "BabiModel", "build_model", "insert_think_steps", "take_steps",
    "BypassDropoutLinear",
    "init_forget_bias", "describe_model", "compile_model",  # compile_model lives in dnc.py; bench.py calls it from here
]
