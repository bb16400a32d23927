"""Pictures of the DNC's memory at work, from the trace of `DNC.trace(...)` (or `BabiModel.trace`).

A trace is a dict of tensors (or arrays) of shape [B, T, ...] (see dnc.py): write_weights [B,T,N],
read_weights [B,T,R,N], usage [B,T,N], allocation [B,T,N], free_gates [B,T,R], allocation_gate [B,T],
write_gate [B,T], read_modes [B,T,R,3] (backward, content, forward), erase_vector [B,T,W],
write_strength [B,T], read_strengths [B,T,R], forward_weights [B,T,R,N], backward_weights [B,T,R,N].

- `plot_memory`: one matplotlib figure with a panel per quantity, time on the shared x axis.
- `memory_image`: a compact RGB array (write / read weightings and usage) for TensorBoard.
- `text_heatmap`: a heat map drawn with unicode shade blocks, for the terminal.

Figures are built with `matplotlib.figure.Figure` (no pyplot, no global backend state) and saved with
the Agg renderer.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure

SHADES = " ░▒▓█"
MODE_NAMES = ("backward", "content", "forward")


def trace_sample(trace: dict, sample: int = 0, steps: int | None = None) -> dict[str, np.ndarray]:
    """Sample `sample` of every traced quantity as float numpy arrays [T, ...] (first `steps` steps)."""
    if not trace or "write_weights" not in trace:
        raise ValueError("the trace has no memory quantities: only a DNC records them (model.trace)")
    out = {}
    for key, value in trace.items():
        array = value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        out[key] = array[sample, :steps].astype(np.float32)
    return out


def _heatmap(ax, matrix: np.ndarray, label: str, cmap: str = "viridis", vmax: float | None = None) -> None:
    """Draw `matrix` [rows, T] with rows top to bottom and time left to right."""
    image = ax.imshow(matrix, aspect="auto", interpolation="nearest", cmap=cmap, vmin=0.0, vmax=vmax)
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.figure.colorbar(image, ax=ax, pad=0.01, fraction=0.02)


def _lines(ax, series: dict[str, np.ndarray], label: str) -> None:
    """Plot named time series [T] as step lines."""
    for name, values in series.items():
        ax.plot(np.arange(len(values)), values, drawstyle="steps-mid", lw=1.0, label=name)
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=len(series), frameon=False)
    ax.set_xlim(-0.5, len(values) - 0.5)
    ax.figure.colorbar(ScalarMappable(), ax=ax, pad=0.01, fraction=0.02).ax.set_visible(False)  # align


def time_axis(ax, steps: int, tokens: list[str] | None, max_labels: int = 60) -> None:
    """Label the time axis with step numbers or with `tokens`, thinned to at most `max_labels`."""
    stride = max(1, -(-steps // max_labels))
    ticks = np.arange(0, steps, stride)
    ax.set_xticks(ticks)
    if tokens is None:
        ax.set_xticklabels([str(t) for t in ticks], fontsize=7)
        ax.set_xlabel("time step", fontsize=8)
    else:
        ax.set_xticklabels([tokens[t] for t in ticks], rotation=90, fontsize=7)


def _panels(s: dict[str, np.ndarray]) -> list[tuple[str, callable, float]]:
    """The figure's panels: (name, draw(ax), relative height)."""
    R = s["read_weights"].shape[1]
    summed = "" if R == 1 else f"\n({R} heads summed)"
    modes = s["read_modes"].transpose(1, 2, 0).reshape(R * 3, -1)  # [R*3, T], head after head
    gates = {"allocation gate": s["allocation_gate"], "write gate": s["write_gate"]}
    gates.update({f"free gate {r}": s["free_gates"][:, r] for r in range(R)})
    strengths = {"write": s["write_strength"]}
    strengths.update({f"read {r}": s["read_strengths"][:, r] for r in range(R)})
    return [
        ("write weightings", lambda ax: _heatmap(ax, s["write_weights"].T, "write\nweighting"), 2.0),
        ("read weightings", lambda ax: _heatmap(ax, s["read_weights"].sum(1).T, "read\nweighting" + summed), 2.0),
        ("usage", lambda ax: _heatmap(ax, s["usage"].T, "usage", vmax=1.0), 2.0),
        ("allocation", lambda ax: _heatmap(ax, s["allocation"].T, "allocation\nweighting"), 2.0),
        ("erase", lambda ax: _heatmap(ax, s["erase_vector"].T, "erase\nvector", "magma", vmax=1.0), 1.2),
        ("gates", lambda ax: _lines(ax, gates, "gates"), 1.0),
        ("strengths", lambda ax: _lines(ax, strengths, "strengths"), 1.0),
        ("read modes", lambda ax: _read_modes(ax, modes, R), 0.4 * R + 0.6),
        ("forward", lambda ax: _heatmap(ax, s["forward_weights"].sum(1).T, "forward\nweighting" + summed), 2.0),
        ("backward", lambda ax: _heatmap(ax, s["backward_weights"].sum(1).T, "backward\nweighting" + summed), 2.0),
    ]


def _read_modes(ax, modes: np.ndarray, heads: int) -> None:
    """Read modes [R*3, T] as a heat map with rows b/c/f per head."""
    _heatmap(ax, modes, "read modes", "Greens", vmax=1.0)
    ax.set_yticks(np.arange(heads * 3))
    ax.set_yticklabels([f"{r}:{m[0]}" for r in range(heads) for m in MODE_NAMES], fontsize=6)
    for r in range(1, heads):
        ax.axhline(r * 3 - 0.5, color="white", lw=0.8)


def plot_memory(
    trace: dict,
    sample: int = 0,
    tokens: list[str] | None = None,
    path: str | Path | None = None,
    title: str | None = None,
) -> Figure:
    """A figure of every memory quantity of one sample over time.

    Args:
      trace: the DNC's trace dict ([B, T, ...] tensors or arrays).
      sample: which batch element to draw.
      tokens: one label per step for the time axis (e.g. the words of a bAbI story); also limits the
        drawn steps to len(tokens). Long sequences get thinned labels.
      path: if given, the figure is saved there as PNG (parent folders are created).
      title: figure title.
    """
    s = trace_sample(trace, sample, None if tokens is None else len(tokens))
    steps = s["write_weights"].shape[0]
    panels = _panels(s)
    width = min(30.0, max(8.0, 4.0 + 0.12 * steps))
    height = sum(h for _, _, h in panels) * 0.75 + 1.0
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, height_ratios=[h for _, _, h in panels])
    for ax, (_, draw, _) in zip(axes, panels, strict=True):
        draw(ax)
    time_axis(axes[-1], steps, tokens)
    if title:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def memory_image(trace: dict, sample: int = 0, scale: int = 4) -> np.ndarray:
    """A compact picture [H, W, 3] uint8 for TensorBoard: write weightings, read weightings (summed over
    heads) and usage, each slots x time, stacked top to bottom with a one-row white gap."""
    s = trace_sample(trace, sample)
    blocks = [s["write_weights"].T, s["read_weights"].sum(1).T.clip(0, 1), s["usage"].T]  # [N, T] each
    gap = np.full((1, blocks[0].shape[1]), np.nan, dtype=np.float32)
    stacked = np.concatenate([blocks[0], gap, blocks[1], gap, blocks[2]])  # [3N + 2, T]
    rgb = matplotlib.colormaps["viridis"](np.nan_to_num(stacked, nan=0.0))[..., :3]  # [H, T, 3]
    rgb[np.isnan(stacked)] = 1.0
    rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    return (rgb * 255).round().astype(np.uint8)


def text_heatmap(matrix, max_cols: int = 60, row_labels: list[str] | None = None) -> str:
    """A heat map of `matrix` [rows, cols] in unicode shade blocks, darkest = largest value.

    Values are scaled by the matrix maximum; more than `max_cols` columns are averaged in equal bins.
    """
    m = np.asarray(matrix.detach().cpu() if hasattr(matrix, "detach") else matrix, dtype=np.float64)
    m = np.atleast_2d(m)
    if m.shape[1] > max_cols:
        bins = np.array_split(np.arange(m.shape[1]), max_cols)
        m = np.stack([m[:, b].mean(axis=1) for b in bins], axis=1)
    top = m.max() if m.size and m.max() > 0 else 1.0
    levels = np.clip(np.rint(m / top * (len(SHADES) - 1)), 0, len(SHADES) - 1).astype(int)
    width = max((len(label) for label in row_labels), default=0) if row_labels else 0
    lines = []
    for i, row in enumerate(levels):
        prefix = f"{row_labels[i]:>{width}} " if row_labels else ""
        lines.append(prefix + "".join(SHADES[v] for v in row))
    return "\n".join(lines)
