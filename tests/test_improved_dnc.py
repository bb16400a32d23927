"""Tests of the improved DNCs beside the paper's: masked content addressing and de-allocation (Csordás &
Schmidhuber 2019) in babi_dnc.memory, the layer-normalised LSTM controller (Franke et al. 2018) in
babi_dnc.controllers, and their ModelConfig fields. The paper's memory itself is tested in test_memory.py."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from babi_dnc import memory as mem
from babi_dnc.controllers import LayerNormLSTMCell, LSTMController
from babi_dnc.memory import Memory
from babi_dnc.models import ModelConfig, build_model, describe_model, preset

T = torch.tensor
D = torch.float64


def close(a, b, tol=1e-9):
    torch.testing.assert_close(torch.as_tensor(a, dtype=D), torch.as_tensor(b, dtype=D), atol=tol, rtol=0)


# ------------------------------------------------------------------------------------- masked content


def test_masked_cosine_similarity_by_hand():
    M = T([[[1.0, 2.0], [3.0, 0.0]]], dtype=D)  # [1, N=2, W=2]
    k = T([[[1.0, 1.0]]], dtype=D)
    m = T([[[1.0, 0.0]]], dtype=D)  # compare only the first component
    e = mem.COSINE_EPSILON
    kn = math.sqrt(1 + e)
    expected = [[[1 / (kn * math.sqrt(1 + e)), 3 / (kn * math.sqrt(9 + e))]]]
    close(mem.masked_cosine_similarity(M, k, m), expected)
    # unmasked, the two slots differ: slot 0 is closer to (1, 1) than slot 1 is
    plain = mem.cosine_similarity(M, k)
    assert plain[0, 0, 0] > plain[0, 0, 1]


def test_masked_similarity_equals_cosine_of_masked_vectors_and_all_ones_is_the_paper():
    gen = torch.Generator().manual_seed(0)
    M = torch.randn(3, 7, 5, generator=gen, dtype=D)
    k = torch.randn(3, 4, 5, generator=gen, dtype=D)
    m = torch.rand(3, 4, 5, generator=gen, dtype=D)
    for h in range(4):
        masked_M = M * m[:, h : h + 1]  # [3, 7, 5]
        want = mem.cosine_similarity(masked_M, (k * m)[:, h : h + 1])  # [3, 1, 7]
        close(mem.masked_cosine_similarity(M, k, m)[:, h : h + 1], want)
    close(mem.masked_cosine_similarity(M, k, torch.ones_like(k)), mem.cosine_similarity(M, k))
    close(mem.content_weighting(M, k, torch.full((3, 4), 2.0, dtype=D), torch.ones_like(k)),
          mem.content_weighting(M, k, torch.full((3, 4), 2.0, dtype=D)))


def test_split_masks_order_and_sigmoid():
    W, R = 2, 2
    raw = torch.arange(mem.mask_size(W, R), dtype=D).unsqueeze(0)  # [1, 6]
    read_masks, write_mask = mem.split_masks(raw, W, R)
    close(read_masks, torch.sigmoid(T([[[0.0, 1.0], [2.0, 3.0]]], dtype=D)))
    close(write_mask, torch.sigmoid(T([[4.0, 5.0]], dtype=D)))


def test_masked_memory_has_a_longer_interface_and_ignores_masked_components():
    N, W, R = 4, 3, 2
    paper, masked = Memory(N, W, R), Memory(N, W, R, masked=True)
    assert masked.interface_size == paper.interface_size + (R + 1) * W
    state = paper.initial_state(1, dtype=D)
    state = state._replace(memory=T([[[1.0, 5.0, 0.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]],
                                    dtype=D))
    xi = _no_write_interface(masked, free_gate=-60.0)  # nothing written or freed: the memory stays as it is
    xi[0, :W] = T([1.0, 0.0, 0.0])  # read key of head 0: (1, 0, 0)
    xi[0, R * W : R * W + 1] = 20.0  # a sharp read strength
    xi[0, paper.interface_size :] = -30.0  # every mask component off ...
    xi[0, paper.interface_size] = 30.0  # ... but the first of read head 0
    trace = {}
    masked(xi, state, trace)
    content = mem.content_weighting(state.memory, xi[:, None, :W], mem.oneplus(T([[20.0]], dtype=D)),
                                    T([[[1.0, 0.0, 0.0]]], dtype=D))
    assert torch.allclose(content[0, 0, 0], content[0, 0, 1])  # slots 0 and 1 look alike through the mask
    # the memory's own read used the mask: its content part rates slots 0 and 1 equally as well
    read_modes = trace["read_modes"][0, 0]
    w = trace["read_weights"][0, 0]
    assert float(w[0]) == pytest.approx(float(w[1]), abs=1e-9) and float(read_modes[1]) > 0
    # without the masks, slot 1 = (1, 0, 0) matches the key better than slot 0 = (1, 5, 0)
    paper_trace = {}
    paper(xi[:, : paper.interface_size], state, paper_trace)
    assert paper_trace["read_weights"][0, 0, 1] > paper_trace["read_weights"][0, 0, 0] + 0.1


# ---------------------------------------------------------------------------------------- de-allocation


def test_deallocate_scales_each_cell_by_its_retention():
    M = T([[[1.0, 2.0], [3.0, 4.0]]], dtype=D)
    close(mem.deallocate(M, T([[0.5, 0.0]], dtype=D)), [[[0.5, 1.0], [0.0, 0.0]]])


def _no_write_interface(memory: Memory, free_gate: float) -> torch.Tensor:
    """An interface whose write gate is ~0 and whose free gates are sigmoid(free_gate)."""
    W, R = memory.word_size, memory.num_reads
    xi = torch.zeros(1, memory.interface_size, dtype=D)
    free = R * W + R + 3 * W + 1
    xi[0, free : free + R] = free_gate
    xi[0, free + R + 1] = -60.0  # write gate sigmoid(-60) ~ 0
    return xi


def test_deallocation_wipes_a_freed_cell_and_the_paper_keeps_it():
    N, W, R = 3, 2, 1
    state = Memory(N, W, R).initial_state(1, dtype=D)
    state = state._replace(memory=T([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]], dtype=D),
                           read_weights=T([[[0.0, 1.0, 0.0]]], dtype=D))  # head 0 last read slot 1
    for deallocate, slot_1 in ((True, [0.0, 0.0]), (False, [3.0, 4.0])):
        memory = Memory(N, W, R, deallocate=deallocate)
        _, new = memory(_no_write_interface(memory, free_gate=60.0), state)  # free gate ~1: slot 1 freed
        close(new.memory[0, 1], slot_1, tol=1e-12)
        close(new.memory[0, 0], [1.0, 2.0], tol=1e-12)  # not read, not freed
        close(new.memory[0, 2], [5.0, 6.0], tol=1e-12)


def test_deallocation_leaves_padded_samples_untouched():
    N, W, R = 3, 2, 1
    memory = Memory(N, W, R, deallocate=True, masked=True)
    state = memory.initial_state(2, dtype=D)
    state = state._replace(memory=torch.arange(12, dtype=D).view(2, N, W) + 1,
                           read_weights=T([[[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]]], dtype=D))
    xi = _no_write_interface(memory, free_gate=60.0).expand(2, -1)
    _, new = memory(xi, state, keep=T([True, False]))
    assert torch.equal(new.memory[1], state.memory[1])
    assert new.memory[0, 1].abs().max() < 1e-12


@pytest.mark.parametrize("masked,deallocate,sharpness", [(True, False, False), (False, True, False),
                                                         (False, False, True), (True, True, True)])
def test_improved_memory_state_stays_in_range_and_passes_gradients(masked, deallocate, sharpness):
    N, W, R, B = 6, 4, 2, 3
    gen = torch.Generator().manual_seed(5)
    memory = Memory(N, W, R, masked=masked, deallocate=deallocate, sharpness=sharpness)
    state = memory.initial_state(B, dtype=D)
    xi = torch.randn(10, B, memory.interface_size, generator=gen, dtype=D, requires_grad=True)
    total = 0
    for t in range(10):
        reads, state = memory(xi[t], state)
        total = total + reads.sum()
        assert (state.usage >= -1e-9).all() and (state.usage <= 1 + 1e-9).all()
        assert (state.read_weights.sum(-1) <= 1 + 1e-9).all()
    total.backward()
    assert torch.isfinite(xi.grad).all() and xi.grad.abs().sum() > 0
    paper = mem.interface_size(W, R)
    if masked:  # the masks' part of the interface is used
        assert xi.grad[:, :, paper : paper + (R + 1) * W].abs().sum() > 0
    if sharpness:  # and the sharpness part, the last 2R
        assert xi.grad[:, :, -2 * R :].abs().sum() > 0


# ------------------------------------------------------------------------------------- link sharpness


def test_sharpen_by_hand():
    d = T([[[0.5, 0.25, 0.25, 0.0]]], dtype=D)
    close(mem.sharpen(d, T([[2.0]], dtype=D)), T([[[0.25, 0.0625, 0.0625, 0.0]]], dtype=D) / (0.375 + 1e-6))
    close(mem.sharpen(d, T([[1.0]], dtype=D)), d / (1 + 1e-6))  # s = 1: only renormalised
    close(mem.sharpen(torch.zeros(1, 1, 4, dtype=D), T([[3.0]], dtype=D)), torch.zeros(1, 1, 4))  # no links yet


def test_sharpen_gradients_and_finite_ones_at_zero_weights():
    d = T([[[0.6, 0.3, 0.1, 0.02], [0.2, 0.2, 0.5, 0.1]]], dtype=D, requires_grad=True)
    s = T([[1.7, 2.5]], dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(mem.sharpen, (d, s))
    zeros = T([[[0.6, 0.4, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]], dtype=D, requires_grad=True)  # slots, heads unlinked
    (mem.sharpen(zeros, s) * torch.arange(4, dtype=D)).sum().backward()
    assert torch.isfinite(zeros.grad).all() and torch.isfinite(s.grad).all() and s.grad[0, 0] != 0


def test_sharpness_reads_its_part_after_the_masks_and_sharpens_both_directions():
    N, W, R, B = 5, 3, 2, 2
    gen = torch.Generator().manual_seed(3)
    plain, sharp = Memory(N, W, R, masked=True), Memory(N, W, R, masked=True, sharpness=True)
    assert sharp.interface_size == plain.interface_size + 2 * R
    state = plain.initial_state(B, dtype=D)
    for _ in range(4):  # a state with links
        _, state = plain(torch.randn(B, plain.interface_size, generator=gen, dtype=D), state)
    xi = torch.randn(B, sharp.interface_size, generator=gen, dtype=D)
    plain_trace, sharp_trace = {}, {}
    plain(xi[:, : plain.interface_size], state, plain_trace)
    sharp(xi, state, sharp_trace)
    strengths = mem.oneplus(xi[:, -2 * R :]).reshape(B, 2, R)
    assert plain_trace["forward_weights"].sum() > 0.1
    close(sharp_trace["forward_weights"], mem.sharpen(plain_trace["forward_weights"], strengths[:, 0]))
    close(sharp_trace["backward_weights"], mem.sharpen(plain_trace["backward_weights"], strengths[:, 1]))
    close(sharp_trace["write_weights"], plain_trace["write_weights"])  # the rest of the step is the same


def test_sharpness_is_a_model_option():
    config = ModelConfig(memory_slots=8, word_size=4, read_heads=2, controller_size=16, sharpness=True)
    model = build_model(config, 9)
    assert model.core.cell.memory.sharpness and "link sharpness" in describe_model(config, True)
    assert not build_model(preset("paper"), 9).core.cell.memory.sharpness  # the paper's DNC


# -------------------------------------------------------------------------------- layer-norm controller


def test_layer_norm_lstm_cell_by_formula():
    gen = torch.Generator().manual_seed(1)
    X, H, B = 3, 4, 2
    cell = LayerNormLSTMCell(X, H).double()
    with torch.no_grad():
        cell.gate_scale.copy_(torch.rand(4, H, generator=gen, dtype=D) + 0.5)
        cell.bias.copy_(torch.randn(4 * H, generator=gen, dtype=D))
    x, h, c = (torch.randn(B, n, generator=gen, dtype=D) for n in (X, H, H))
    z = cell.weight(torch.cat([x, h], -1)).view(B, 4, H)
    mean, var = z.mean(-1, keepdim=True), z.var(-1, unbiased=False, keepdim=True)
    z = ((z - mean) / torch.sqrt(var + 1e-5) * cell.gate_scale).reshape(B, 4 * H) + cell.bias
    i, f, g, o = z.chunk(4, -1)
    c_want = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_want = torch.sigmoid(o) * torch.tanh(F.layer_norm(c_want, (H,)))
    h_new, c_new = cell(x, (h, c))
    close(c_new, c_want)
    close(h_new, h_want)


def test_layer_norm_controller_and_its_forget_bias():
    controller = LSTMController(5, 8, num_layers=2, layer_norm=True)
    assert all(isinstance(c, LayerNormLSTMCell) for c in controller.cells)
    model = build_model(ModelConfig(controller_size=8, memory_slots=4, word_size=3, read_heads=1, layer_norm=True,
                                    forget_bias=1.0), vocab_size=10)
    cell = model.core.cell.controller.cells[0]
    assert isinstance(cell, LayerNormLSTMCell)
    assert torch.all(cell.bias[8:16] == 1.0) and torch.all(cell.bias[:8] == 0.0)


def test_joint_preset_builds_the_improved_dnc_and_it_trains():
    config = preset("joint", "dnc", controller_size=16, memory_slots=6, word_size=4, read_heads=2, embedding=8)
    assert config.layer_norm and config.masked and config.deallocate
    assert not (preset("paper").layer_norm or preset("paper").masked or preset("paper").deallocate)
    model = build_model(config, vocab_size=12)
    assert model.core.memory.masked and model.core.memory.deallocate
    ids = torch.randint(0, 12, (3, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, 6:] = False
    logits, _ = model(ids, mask=mask)
    logits.logsumexp(-1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    assert (logits[1, 6:] == 0).all()


def test_model_options_reach_the_saved_config(tmp_path, tiny_babi_dir):
    from typer.testing import CliRunner

    from app import app
    from babi_dnc.checkpoint import read_config

    out = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--max-steps", "2", "--data-dir", str(tiny_babi_dir), "--tasks", "1",
            "--out", str(out), "--no-progress", "--memory-slots", "12", "--word-size", "5", "--read-heads", "3",
            "--controller-size", "7", "--think-steps", "1", "--sharpness", "--bypass-dropout", "0.25"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    model = read_config(out)["model"]
    assert model["bypass_dropout"] == 0.25 and model["sharpness"] is True and model["think_steps"] == 1
    assert (model["memory_slots"], model["word_size"], model["read_heads"], model["controller_size"]) == (12, 5, 3, 7)
    other = CliRunner().invoke(app, [*args, "--resume", "--memory-slots", "16"])
    assert other.exit_code == 2 and "trained with --memory-slots 12, not --memory-slots 16" in other.output
    other = CliRunner().invoke(app, [*args, "--resume", "--think-steps", "2"])
    assert other.exit_code == 2 and "trained with --think-steps 1, not --think-steps 2" in other.output
    same = CliRunner().invoke(app, [*args, "--resume", "--max-steps", "3"])  # the run's own values: accepted
    assert same.exit_code == 0, same.output
    assert CliRunner().invoke(app, [*args[:-1], "1.5"]).exit_code == 2  # outside [0, 0.99]


# ------------------------------------------------------------- ADNC: content-only memory, interface norm


def test_without_links_every_head_reads_by_content_and_the_link_stays_zero():
    torch.manual_seed(0)
    N, W, R = 5, 3, 2
    content_only, paper = Memory(N, W, R, links=False), Memory(N, W, R)
    assert content_only.interface_size == paper.interface_size  # the read modes are there, unused
    state = paper_state = paper.initial_state(2, dtype=D)
    for _ in range(3):  # a few steps, so that links would have formed
        xi = torch.randn(2, paper.interface_size, dtype=D)
        trace = {}
        _, new_state = content_only(xi, state, trace)
        fields = mem.split_interface(xi, W, R)
        content = mem.content_weighting(new_state.memory, fields.read_keys, fields.read_strengths)
        close(new_state.read_weights, content)  # w^r = c^r, whatever the read modes say
        assert not new_state.link.any() and not new_state.precedence.any()
        assert not trace["forward_weights"].any() and not trace["backward_weights"].any()
        _, same_start = paper(xi, state, {})
        close(new_state.memory, same_start.memory)  # writing is the same
        _, paper_state = paper(xi, paper_state, {})
        state = new_state
    assert paper_state.link.abs().sum() > 0  # the paper's memory links the same writes
    unfused = Memory(N, W, R, links=False, fused=False)
    close(unfused(xi, state)[0], content_only(xi, state)[0])
    with pytest.raises(ValueError, match="needs links"):
        Memory(N, W, R, sharpness=True, links=False)


def test_interface_norm_makes_the_step_blind_to_the_interface_weights_scale():
    torch.manual_seed(0)
    config = ModelConfig(memory_slots=6, word_size=4, read_heads=2, controller_size=8, interface_norm=True)
    model = build_model(config, 9).eval()
    cell = model.core.cell
    assert "interface layer norm" in describe_model(config, True)
    ids = torch.randint(0, 9, (2, 7))
    with torch.no_grad():
        y, _ = model(ids)
        cell.interface.weight.mul_(3.0)
        cell.interface.bias.mul_(3.0)
        y_scaled, _ = model(ids)
    torch.testing.assert_close(y, y_scaled, atol=1e-4, rtol=1e-4)  # layer norm undoes the scale
    plain = build_model(dataclasses.replace(config, interface_norm=False), 9).eval()
    with torch.no_grad():
        y_plain, _ = plain(ids)
        plain.core.cell.interface.weight.mul_(3.0)
        plain.core.cell.interface.bias.mul_(3.0)
        assert not torch.allclose(y_plain, plain(ids)[0], atol=1e-3)  # the paper's DNC is not
    no_links = build_model(dataclasses.replace(config, links=False), 9)
    assert not no_links.core.cell.memory.links and "no temporal links" in describe_model(
        dataclasses.replace(config, links=False), True)


def test_the_interface_splits_into_the_papers_fields_then_the_masks_then_the_sharpness():
    from babi_dnc.interface import interface_size, mask_size, split_interface, split_parts

    W, R = 3, 2
    paper, masks = interface_size(W, R), mask_size(W, R)
    raw = torch.arange(paper + masks + 2 * R, dtype=torch.float64).unsqueeze(0) / 10
    parts = split_parts(raw, W, R, masked=True)
    assert torch.equal(parts.xi.write_vector, split_interface(raw[:, :paper], W, R).write_vector)
    assert torch.equal(parts.read_masks, torch.sigmoid(raw[:, paper : paper + R * W]).reshape(1, R, W))
    assert torch.equal(parts.write_mask, torch.sigmoid(raw[:, paper + R * W : paper + masks]).reshape(1, 1, W))
    assert torch.equal(parts.sharpness, raw[:, paper + masks :])
    plain = split_parts(raw[:, :paper], W, R, masked=False)
    assert plain.read_masks is None and plain.write_mask is None and plain.sharpness.shape == (1, 0)


def test_clip_value_bounds_the_controller_and_the_dnc_outputs():
    """DeepMind's clip_value: h_t and y_t clamped to [-v, v]; None is the paper's DNC (unbounded)."""
    config = dataclasses.replace(preset("tiny"), clip_value=0.05)
    model = build_model(config, 9)
    seen = []
    model.core.cell.interface.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=3.0)  # large outputs everywhere
    y, _ = model(torch.randint(0, 9, (2, 6)))
    assert y.abs().max() <= 0.05 + 1e-7 and torch.stack(seen).abs().max() <= 0.05 + 1e-7
    assert y.abs().max() > 0.049  # the bound was reached: clamped, not merely small
    plain = build_model(preset("tiny"), 9)
    plain.load_state_dict(model.state_dict())
    assert plain(torch.zeros(2, 6, dtype=torch.long))[0].abs().max() > 0.05
    assert "outputs clipped to ±0.05" in describe_model(config, True)
