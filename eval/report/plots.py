"""The plots of an evaluation: errors per task against the published numbers, training curves, and the
DNC's memory over one test story per task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from babi_dnc import run_folder
from babi_dnc.data import TASK_NAMES
from babi_dnc.metrics import FAILED_ABOVE

from ..aggregate import Comparison
from ..memory_plots import plot_story
from .tables import NOTE_MARK, finite

OURS_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
PUBLISHED_COLORS = ("#6b6b6b", "#b0b0b0", "#d9c49a", "#9ab8d9")
MAX_STORY_TASKS = 4  # memory plots in a report, by default


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _colors(comparison: Comparison) -> dict[str, tuple[str, str | None]]:
    """Column key -> (colour, hatch): ours in strong colours, published in muted hatched ones."""
    out = {c.key: (OURS_COLORS[i % len(OURS_COLORS)], None) for i, c in enumerate(comparison.ours)}
    out.update({c.key: (PUBLISHED_COLORS[i % len(PUBLISHED_COLORS)], "//") for i, c in enumerate(comparison.published)})
    return out


def plot_task_errors(comparison: Comparison, path: str | Path) -> Path:
    """Grouped bars: per task (and the mean) the error of every column, sd as error bars, the failure line."""
    columns, tasks = comparison.columns, comparison.tasks
    groups = len(tasks) + 1
    width = 0.8 / max(len(columns), 1)
    per_group = max(1.6 if groups - 1 <= 6 else 0.6, 0.16 * len(columns))  # inches: room for bars and names
    fig = Figure(figsize=(min(22.0, max(7.0, per_group * groups + 2.5)), 4.6), layout="constrained")
    ax = fig.subplots()
    colors = _colors(comparison)
    top = 0.0
    for i, c in enumerate(columns):
        x = np.arange(groups) + (i - (len(columns) - 1) / 2) * width
        means = [float(c.per_task.loc[t, "mean"]) if t in c.per_task.index else np.nan for t in tasks]
        sds = [float(c.per_task.loc[t, "sd"]) if t in c.per_task.index else np.nan for t in tasks]
        means.append(c.mean_error if finite(c.mean_error) else np.nan)
        sds.append(c.mean_sd if finite(c.mean_sd) else np.nan)
        means, sds = np.array(means, dtype=float), np.array(sds, dtype=float)
        color, hatch = colors[c.key]
        label = c.label + (f" {NOTE_MARK}" if c.note else "")
        ax.bar(x, means, width, color=color, hatch=hatch, edgecolor="white" if hatch else color, linewidth=0.5,
               label=label)
        has_sd = np.isfinite(sds) & np.isfinite(means)
        if has_sd.any():
            ax.errorbar(x[has_sd], means[has_sd], yerr=sds[has_sd], fmt="none", ecolor="#333333", elinewidth=0.8,
                        capsize=2)
        top = max(top, np.nanmax(np.append(means + np.nan_to_num(sds), 0.0)))
    threshold = 100 * FAILED_ABOVE  # %
    ax.axhline(threshold, color="#333333", lw=0.8, ls="--")
    ax.text(-0.55, threshold, f"{threshold:g}%", va="bottom", ha="left", fontsize=7, color="#333333")
    if groups - 1 > 6:
        labels = [f"{t} {TASK_NAMES[t]}" for t in tasks] + ["mean"]
        ax.set_xticks(np.arange(groups), labels, rotation=40, ha="right", fontsize=7)
    else:
        labels = [f"{t}\n{TASK_NAMES[t]}" for t in tasks] + ["mean"]
        ax.set_xticks(np.arange(groups), labels, fontsize=8)
    ax.axvline(groups - 1.5, color="#999999", lw=0.6)
    ax.set_xlim(-0.6, groups - 0.4)
    ax.set_ylim(0, min(105.0, max(10.0, top * 1.1)))
    ax.set_ylabel(f"{'test' if comparison.split == 'test' else 'validation'} error (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.legend(fontsize=8, loc="outside right center", frameon=False)
    fig.suptitle("error per task: our runs (mean ± sd over runs) and the published numbers", fontsize=10)
    return _save(fig, Path(path))


def metrics_frame(run_dir: str | Path) -> pd.DataFrame:
    """RUN/metrics.jsonl (run_folder.read_metrics) as a DataFrame (empty if there is no log)."""
    rows = [row for row in run_folder.read_metrics(run_dir) if "step" in row and "kind" in row]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["step", "kind"])


def plot_training_curves(comparison: Comparison, path: str | Path) -> Path | None:
    """Training loss and validation error over steps, one line per run (colour per configuration);
    a star marks the checkpoint that was evaluated. None if no run has a metrics log."""
    fig = Figure(figsize=(12.0, 4.0), layout="constrained")
    loss_ax, error_ax = fig.subplots(1, 2)
    colors = _colors(comparison)
    drawn = False
    for c in comparison.ours:
        color = colors[c.key][0]
        for j, r in enumerate(c.results):
            m = metrics_frame(r.run_dir)
            style = ("-", "--", ":", "-.")[j % 4]
            name = f"{c.label} {r.label}" if len(c.results) > 1 else c.label
            train = m[m["kind"] == "train"].dropna(subset=["loss"]) if "loss" in m else m.iloc[:0]
            if len(train):
                smooth = train["loss"].rolling(max(1, len(train) // 40), min_periods=1).mean()
                loss_ax.plot(train["step"], train["loss"], color=color, alpha=0.2, lw=0.7)
                loss_ax.plot(train["step"], smooth, color=color, ls=style, lw=1.3, label=name)
                drawn = True
            evals = m[m["kind"] == "eval"].dropna(subset=["error"]) if "error" in m else m.iloc[:0]
            if len(evals):
                error_ax.plot(evals["step"], 100 * evals["error"], color=color, ls=style, lw=1.3, marker=".",
                              ms=3, label=name)
                chosen = evals[evals["step"] == r.step]
                if len(chosen):
                    error_ax.plot(chosen["step"], 100 * chosen["error"], marker="*", ms=11, color=color,
                                  markeredgecolor="black", markeredgewidth=0.5, ls="none")
                drawn = True
    if not drawn:
        return None
    loss_ax.set_title("training loss (cross-entropy at the answer words)", fontsize=10)
    error_ax.set_title("validation error (mean over tasks); ★ = evaluated checkpoint", fontsize=10)
    error_ax.set_ylabel("error (%)")
    error_ax.axhline(100 * FAILED_ABOVE, color="#333333", lw=0.8, ls="--")
    for ax in (loss_ax, error_ax):
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    return _save(fig, Path(path))


def plot_stories(comparison: Comparison, out_dir: Path, tasks: list[int] | None = None) -> list[dict]:
    """Memory plots of one test story per task for the best run of the first DNC configuration."""
    dnc = next((c for c in comparison.ours if c.results[0].model_kind == "dnc"), None)
    if dnc is None:
        return []
    run = next(r for r in dnc.results if r.label == dnc.best_run)
    chosen = [t for t in (tasks or run.tasks[:MAX_STORY_TASKS]) if t in run.tasks]
    device = next(run.model.parameters()).device
    plots = []
    for task in chosen:
        path = out_dir / f"memory-task{task}.png"
        info = plot_story(run.model, run.dataset, run.vocab, task, path, title=f"{dnc.label} {run.label}",
                          device=device)
        plots.append({**info, "run": run.label})
    return plots

