"""Memory plots from a fake trace with the DNC's trace shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from babi_dnc.viz import SHADES, memory_image, plot_memory, text_heatmap, trace_sample

B, T, N, R, W = 2, 12, 8, 2, 5


def fake_trace(steps: int = T) -> dict[str, torch.Tensor]:
    """Random values of the right shapes; write weights one-hot on slot t (mod N) for sample 1."""
    g = torch.Generator().manual_seed(0)

    def weights(*shape):
        return torch.softmax(3 * torch.randn(*shape, generator=g), dim=-1)

    def unit(*shape):
        return torch.rand(*shape, generator=g)

    trace = dict(
        write_weights=weights(B, steps, N), read_weights=weights(B, steps, R, N), usage=unit(B, steps, N),
        allocation=weights(B, steps, N), free_gates=unit(B, steps, R), allocation_gate=unit(B, steps),
        write_gate=unit(B, steps), read_modes=weights(B, steps, R, 3), erase_vector=unit(B, steps, W),
        write_strength=1 + 5 * unit(B, steps), read_strengths=1 + 5 * unit(B, steps, R),
        forward_weights=weights(B, steps, R, N), backward_weights=weights(B, steps, R, N),
    )
    trace["write_weights"][1] = torch.eye(N)[torch.arange(steps) % N]
    return trace


def test_trace_sample_picks_sample_and_steps():
    trace = fake_trace()
    s = trace_sample(trace, sample=1, steps=5)
    assert s["read_weights"].shape == (5, R, N)
    assert s["allocation_gate"].shape == (5,)
    np.testing.assert_array_equal(s["write_weights"], np.eye(N, dtype=np.float32)[:5])


def test_empty_trace_is_refused():
    with pytest.raises(ValueError, match="only a DNC"):
        plot_memory({})


def test_plot_memory_saves_png(tmp_path):
    path = tmp_path / "sub" / "memory.png"
    fig = plot_memory(fake_trace(), sample=1, path=path, title="fake")
    assert isinstance(fig, Figure)
    assert len(fig.axes) >= 10  # one panel per quantity (+ colorbars)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_plot_memory_tokens_label_and_limit_the_time_axis():
    tokens = [f"w{i}" for i in range(T - 2)]
    fig = plot_memory(fake_trace(), tokens=tokens)
    labels = [t.get_text() for ax in fig.axes for t in ax.get_xticklabels() if t.get_text()]
    assert labels[:3] == ["w0", "w1", "w2"]
    image = fig.axes[0].images[0]
    assert image.get_array().shape == (N, T - 2)  # only len(tokens) steps drawn


def test_plot_memory_thins_labels_of_long_sequences():
    steps = 300
    fig = plot_memory(fake_trace(steps), tokens=[str(i) for i in range(steps)])
    labels = [t.get_text() for ax in fig.axes for t in ax.get_xticklabels() if t.get_text()]
    assert 0 < len(labels) <= 60


def test_memory_image_shape_and_dtype():
    image = memory_image(fake_trace(), sample=0, scale=3)
    assert image.dtype == np.uint8
    assert image.shape == ((3 * N + 2) * 3, T * 3, 3)
    assert (image[N * 3 : N * 3 + 3] == 255).all()  # white gap row after the write weightings


def test_text_heatmap_shades_and_binning():
    matrix = np.array([[0.0, 0.5, 1.0], [1.0, 0.0, 0.25]])
    text = text_heatmap(matrix)
    assert text.splitlines() == [" ▒█", "█ ░"]
    wide = text_heatmap(torch.rand(4, 200), max_cols=50, row_labels=["a", "b", "c", "dd"])
    lines = wide.splitlines()
    assert len(lines) == 4 and all(len(line) == 3 + 50 for line in lines)
    assert lines[3].startswith("dd ")
    assert set(text_heatmap(np.zeros((2, 3)))) <= {" ", "\n"}
    assert set("".join(lines)) <= set(SHADES) | set("abcd ")


@pytest.mark.parametrize("heads", [1, 4])
def test_plot_memory_any_number_of_heads(heads):
    trace = fake_trace()
    for key in ("read_weights", "forward_weights", "backward_weights"):
        trace[key] = torch.softmax(torch.randn(B, T, heads, N), -1)
    trace["read_modes"] = torch.softmax(torch.randn(B, T, heads, 3), -1)
    trace["free_gates"], trace["read_strengths"] = torch.rand(B, T, heads), 1 + torch.rand(B, T, heads)
    fig = plot_memory(trace)
    modes_axis = next(ax for ax in fig.axes if ax.get_ylabel() == "read modes")
    assert modes_axis.images[0].get_array().shape == (3 * heads, T)
