"""What an evaluation shows: the comparison table (console, Markdown, HTML), CSV files, plots, error
analysis and provenance.

    comparison = aggregate.compare(results)
    console.print(console_table(comparison))                       # tasks as rows, models as columns
    paths = write_report(comparison, "out/", provenance(comparison))  # report.md, report.html, CSVs, plots
    print(json.dumps(to_json(comparison)))                         # for scripts

The report is built once as a list of blocks (headings, paragraphs, tables, images, preformatted text,
collapsible sections) and rendered twice: to Markdown (images as files next to it) and to one
self-contained HTML file (images base64-embedded, inline CSS, no scripts, nothing fetched).
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
import platform
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from babi_dnc.data import TASK_NAMES

from .aggregate import FAILED_ABOVE, Column, Comparison, results_table
from .harness import QUESTION_COLUMNS, RunResult, story_text, task_errors

FAILED_MARK = "✗"
NOTE_MARK = "†"
OURS_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
PUBLISHED_COLORS = ("#6b6b6b", "#b0b0b0", "#d9c49a", "#9ab8d9")
MAX_STORY_TASKS = 4  # memory plots in a report, by default


# ------------------------------------------------------------------------------------------- tables


@dataclass
class Cell:
    """One table cell: text, and how to show it."""

    text: str
    bold: bool = False
    failed: bool = False  # error above 5%: marked
    left: bool = False  # left-aligned (labels)


@dataclass
class Table:
    """A table for every renderer: header (with an optional second line per column) and rows of cells."""

    header: list[str]
    rows: list[list[Cell]]
    subheader: list[str] | None = None
    caption: str = ""
    rules: set[int] = field(default_factory=set)  # rows with a rule above them


def _finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def fmt(mean, sd=None, digits: int = 1) -> str:
    """"12.3 ± 4.5", "12.3" (no sd), "" (no value)."""
    if not _finite(mean):
        return ""
    text = f"{mean:.{digits}f}"
    return f"{text} ± {sd:.{digits}f}" if _finite(sd) else text


def fmt_count(mean, sd=None) -> str:
    """A (mean) number of tasks: "3" for one run, "2.5 ± 0.7" over runs."""
    if not _finite(mean):
        return ""
    if not _finite(sd) and float(mean).is_integer():
        return str(int(mean))
    return fmt(mean, sd)


def column_subtitle(column: Column) -> str:
    """The second header line: runs (and the checkpoint step of a single run of ours)."""
    runs = column.runs or 0
    text = f"{runs} run{'s' if runs != 1 else ''}" if runs else "best run"
    if column.kind == "ours" and column.per_run is not None and len(column.per_run) == 1:
        text += f", step {int(column.per_run['step'].iloc[0]):,}"
    return text


def task_questions(comparison: Comparison) -> dict[int, int]:
    """Questions per task (from the first run that has the task)."""
    out: dict[int, int] = {}
    for r in comparison.results:
        for task, n in task_errors(r.questions)["questions"].items():
            out.setdefault(int(task), int(n))
    return out


def comparison_table(comparison: Comparison) -> Table:
    """Tasks as rows; our columns, then the published ones; mean error, failed tasks and best run below."""
    columns = comparison.columns
    best = comparison.best_per_task()
    questions = task_questions(comparison)
    rows, rules = [], set()
    for task in comparison.tasks:
        row = [Cell(f"{task} {TASK_NAMES[task]}", left=True), Cell(f"{questions.get(task, 0):,}")]
        for c in columns:
            if task not in c.per_task.index or not _finite(c.per_task.loc[task, "mean"]):
                row.append(Cell("–"))
                continue
            mean, sd = float(c.per_task.loc[task, "mean"]), c.per_task.loc[task, "sd"]
            row.append(Cell(fmt(mean, sd), bold=c.key in best[task], failed=mean > FAILED_ABOVE))
        rows.append(row)

    rules.add(len(rows))
    label = "mean error" + (f", tasks {comparison.tasks_text}" if comparison.subset else "")
    means = [c.mean_error for c in columns if _finite(c.mean_error)]
    low = round(min(means), 1) if means else None
    row = [Cell(label, left=True), Cell("")]
    for c in columns:
        text = fmt(c.mean_error, c.mean_sd) + (NOTE_MARK if c.note else "") + _tasks_note(c, comparison)
        row.append(Cell(text, bold=_finite(c.mean_error) and round(c.mean_error, 1) == low))
    rows.append(row)
    rows.append([Cell(f"failed tasks (> {FAILED_ABOVE:g}%)", left=True), Cell("")]
                + [Cell(fmt_count(c.failed, c.failed_sd) + (NOTE_MARK if c.note and _finite(c.failed) else ""))
                   for c in columns])  # fmt: skip
    rows.append([Cell("best run (failed tasks)", left=True), Cell("")]
                + [Cell(f"{c.best_error:.1f} ({c.best_failed})" if _finite(c.best_error) else "") for c in columns])
    return Table(header=["task", "questions"] + [c.label for c in columns], rows=rows, rules=rules,
                 subheader=["", ""] + [column_subtitle(c) for c in columns], caption=table_caption(comparison))


def _tasks_note(column: Column, comparison: Comparison) -> str:
    """" (tasks 1)" when one of our columns was evaluated on fewer tasks than the table shows."""
    if column.kind == "ours" and column.tasks != comparison.tasks:
        return f" (tasks {','.join(map(str, column.tasks))})"
    return ""


def table_caption(comparison: Comparison) -> str:
    """What the numbers in the table are."""
    split = "test" if comparison.split == "test" else "validation"
    parts = [f"% question error on the {split} split (a question counts only if every answer word is right); "
             f"mean ± sd over runs; bold: best of the row; {FAILED_MARK}: failed (error > {FAILED_ABOVE:g}%)."]
    if comparison.split != "test":
        parts.append("The published numbers are test errors.")
    if comparison.subset and comparison.published:
        parts.append(f"{NOTE_MARK} Published over tasks {comparison.tasks_text} only: the mean of the per-task "
                     "means, and the number of those tasks whose mean error is above 5% (the paper's 20-task numbers: "
                     "DNC1 16.7 ± 7.6, 11.2 ± 5.4 failed; LSTM 512 27.3 ± 0.8, 17.1 ± 1.0 failed).")
    if comparison.published:
        parts.append("Published: Graves et al., Nature 538 (2016), Extended Data Table 1 (20 runs each); "
                     "TF DNC: one run of github.com/bgavran/DNC.")
    return " ".join(parts)


def _cell_text(cell: Cell) -> str:
    return f"{cell.text} {FAILED_MARK}" if cell.failed else cell.text


def to_rich(table: Table, title: str | None = None):
    """A rich Table: bold best cells, failed cells red with a mark."""
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    out = RichTable(title=title, title_justify="left", box=box.SIMPLE_HEAD, caption=table.caption,
                    caption_justify="left", pad_edge=False)  # fmt: skip
    subheader = table.subheader or [""] * len(table.header)
    for i, (name, sub) in enumerate(zip(table.header, subheader, strict=True)):
        heading = Text(name, style="bold")
        if sub:
            heading.append(f"\n{sub}", style="dim")
        out.add_column(heading, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for i, row in enumerate(table.rows):
        cells = []
        for cell in row:
            style = ("bold " if cell.bold else "") + ("red" if cell.failed else "")
            cells.append(Text(_cell_text(cell), style=style.strip() or ""))
        out.add_row(*cells, end_section=(i + 1) in table.rules)
    return out


def console_table(comparison: Comparison):
    """The comparison as a rich Table for the terminal."""
    split = "test" if comparison.split == "test" else "validation"
    title = f"bAbI en-10k, {split} error (%), tasks {comparison.tasks_text}"
    return to_rich(comparison_table(comparison), title=title)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown_table(table: Table) -> str:
    """A GitHub-flavoured Markdown table (best cells bold, failed cells marked) with its caption."""
    subheader = table.subheader or [""] * len(table.header)
    head = [_md_escape(h) + (f"<br>{_md_escape(s)}" if s else "") for h, s in zip(table.header, subheader, strict=True)]
    first = table.rows[0] if table.rows else [Cell("", left=i == 0) for i in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(":---" if c.left else "---:" for c in first) + "|"]
    for row in table.rows:
        texts = []
        for cell in row:
            text = _md_escape(_cell_text(cell))
            texts.append(f"**{text}**" if cell.bold and text else text)
        lines.append("| " + " | ".join(texts) + " |")
    if table.caption:
        lines += ["", table.caption]
    return "\n".join(lines)


def to_html_table(table: Table) -> str:
    """An HTML table (classes: best, failed, rule) with its caption."""
    subheader = table.subheader or [""] * len(table.header)
    left = [c.left for c in table.rows[0]] if table.rows else [i == 0 for i in range(len(table.header))]
    head = "".join(f"<th{' class=label' if is_left else ''}>{html.escape(h)}"
                   + (f"<br><span class='sub'>{html.escape(s)}</span>" if s else "") + "</th>"
                   for h, s, is_left in zip(table.header, subheader, left, strict=True))
    body = []
    for i, row in enumerate(table.rows):
        cells = []
        for cell in row:
            classes = [c for c, on in (("best", cell.bold), ("failed", cell.failed), ("label", cell.left)) if on]
            attr = f" class='{' '.join(classes)}'" if classes else ""
            text = html.escape(_cell_text(cell))
            cells.append(f"<td{attr}>{f'<b>{text}</b>' if cell.bold else text}</td>")
        body.append(f"<tr{' class=rule' if i in table.rules else ''}>{''.join(cells)}</tr>")
    caption = f"<p class='caption'>{html.escape(table.caption)}</p>" if table.caption else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{caption}"


def frame_table(frame: pd.DataFrame, caption: str = "", left: int = 1) -> Table:
    """A pandas DataFrame (already formatted as strings or numbers) as a Table; the first `left` columns
    are left-aligned."""
    rows = [[Cell("" if pd.isna(v) else str(v), left=i < left) for i, v in enumerate(values)]
            for values in frame.itertuples(index=False)]
    return Table(header=[str(c) for c in frame.columns], rows=rows, caption=caption)


# ------------------------------------------------------------------------------------------- plots


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
    """Grouped bars: per task (and the mean) the error of every column, sd as error bars, the 5% line."""
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
        means.append(c.mean_error if _finite(c.mean_error) else np.nan)
        sds.append(c.mean_sd if _finite(c.mean_sd) else np.nan)
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
    ax.axhline(FAILED_ABOVE, color="#333333", lw=0.8, ls="--")
    ax.text(-0.55, FAILED_ABOVE, f"{FAILED_ABOVE:g}%", va="bottom", ha="left", fontsize=7, color="#333333")
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


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    """RUN/metrics.jsonl as a DataFrame (unreadable lines skipped; empty if there is no log)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return pd.DataFrame(columns=["step", "kind"])
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row and "kind" in row:
            rows.append(row)
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
            m = read_metrics(r.run_dir)
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
    error_ax.axhline(FAILED_ABOVE, color="#333333", lw=0.8, ls="--")
    for ax in (loss_ax, error_ax):
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    return _save(fig, Path(path))


def plot_stories(comparison: Comparison, out_dir: Path, tasks: list[int] | None = None) -> list[dict]:
    """Memory plots of one test story per task for the best run of the first DNC configuration."""
    from .memory_plots import plot_story

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
                          device=device)  # fmt: skip
        plots.append({**info, "run": run.label})
    return plots


# ----------------------------------------------------------------------------------- error analysis


def error_analysis(result: RunResult, task: int, top: int = 5, examples: int = 3) -> dict:
    """The most common wrong answers of one run on one task, and a few failed questions with their stories.

    Returns {"task", "questions", "wrong", "pairs": [(expected, predicted, count)], "examples": [story dicts
    with question, answer, predicted, sentences (before the question), supporting]}.
    """
    q = result.questions[result.questions["task"] == task]
    wrong = q[~q["correct"]]
    pairs = wrong.groupby(["expected", "predicted"]).size().sort_values(ascending=False, kind="stable").head(top)
    picked = wrong.drop_duplicates("row").head(examples)
    stories = []
    for row, qi, predicted in zip(picked["row"], picked["q"], picked["predicted"], strict=True):
        if result.dataset is None:
            break
        stories.append({**story_text(result.dataset, int(row), int(qi)), "predicted": predicted})
    return {"task": task, "questions": len(q), "wrong": len(wrong),
            "pairs": [(e, p, int(n)) for (e, p), n in pairs.items()], "examples": stories}  # fmt: skip


def format_story(example: dict, context: int = 8) -> str:
    """A failed question in its story: the sentences before it (supporting facts starred, long stories
    cut to the supporting facts and the last `context` sentences), the question and both answers."""
    sentences, support = example["sentences"], set(example.get("supporting", []))
    keep = set(range(max(0, len(sentences) - context), len(sentences))) | support
    lines, skipped = [f"task {example['task']}, story {example['story_id']} (* = supporting fact)"], 0
    for i, sentence in enumerate(sentences):
        if i not in keep:
            skipped += 1
            continue
        if skipped:
            lines.append(f"      ... {skipped} sentence{'s' if skipped > 1 else ''}")
            skipped = 0
        lines.append(f"  {'*' if i in support else ' '} {i + 1:>2} {sentence}")
    lines.append(f"  Q: {example['question']}   expected: {example['answer']}   answered: {example['predicted']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- provenance


def git_commit(root: str | Path | None = None) -> str:
    """The babi-dnc git commit (with " + local changes" if the tracked files differ), else "unknown"."""
    import babi_dnc

    root = Path(root) if root else Path(babi_dnc.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + (" + local changes" if dirty else "")) if commit else "unknown"


def device_name(device: str) -> str:
    """"cpu (model name, N threads)" or "cuda:0 (GPU name)"."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{device} ({cpu}, {torch.get_num_threads()} threads)"


def provenance(comparison: Comparison, command: str | None = None) -> dict:
    """What produced the numbers: runs (directory, checkpoint, step, seed, config), data sources and
    checksums, the babi-dnc commit, versions, device, date and the command."""
    import torch

    import babi_dnc

    sources = []
    for r in comparison.results:
        if r.data_source not in sources:
            sources.append(r.data_source)
    devices = sorted({r.device for r in comparison.results})
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "split": comparison.split,
        "tasks": comparison.tasks,
        "babi_dnc_commit": git_commit(),
        "babi_dnc_version": getattr(babi_dnc, "__version__", None) or _package_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "host": platform.node(),
        "device": ", ".join(device_name(d) for d in devices),
        "data": sources,
        "runs": [{
            "run": r.label, "run_dir": str(r.run_dir.resolve()), "model": r.model_kind, "seed": r.seed,
            "checkpoint": r.checkpoint, "step": r.step, "data": r.config.get("data", {}), "notes": r.notes,
            "config": r.config,
        } for r in comparison.results],
    }  # fmt: skip


def _package_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("babi-dnc")
    except PackageNotFoundError:
        return None


# ------------------------------------------------------------------------------------------- JSON


def _clean(x):
    """NaN -> None, numpy scalars -> Python, recursively (for strict JSON)."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def column_json(column: Column) -> dict:
    """One column of the comparison for scripts."""
    per_task = {int(t): {"mean": row["mean"], "sd": row["sd"]} for t, row in column.per_task.iterrows()}
    out = {"label": column.label, "kind": column.kind, "runs": column.runs, "tasks": per_task,
           "mean_error": column.mean_error, "mean_sd": column.mean_sd, "failed_tasks": column.failed,
           "failed_sd": column.failed_sd, "best_error": column.best_error, "best_failed": column.best_failed,
           "best_run": column.best_run, "source": column.source, "note": column.note}  # fmt: skip
    return out


def to_json(comparison: Comparison, failures: list[tuple] | None = None) -> dict:
    """Per run and task: questions, wrong, error (%), failed; per configuration and published model: the
    aggregated columns; the runs that could not be evaluated."""
    runs = []
    for r in comparison.results:
        t = task_errors(r.questions)
        runs.append({
            "run": r.label, "run_dir": str(r.run_dir), "model": r.model_kind, "seed": r.seed, "step": r.step,
            "checkpoint": r.checkpoint, "split": r.split, "mean_error": float(t["error"].mean()),
            "failed_tasks": int(t["failed"].sum()),
            "tasks": {int(task): {"name": row["name"], "questions": int(row["questions"]), "wrong": int(row["wrong"]),
                                  "error": float(row["error"]), "failed": bool(row["failed"])}
                      for task, row in t.iterrows()},
        })  # fmt: skip
    return _clean({
        "split": comparison.split,
        "tasks": comparison.tasks,
        "runs": runs,
        "models": [column_json(c) for c in comparison.ours],
        "published": [column_json(c) for c in comparison.published],
        "errors": [{"run": str(p), "message": m} for p, m in failures or []],
    })


# ------------------------------------------------------------------------------------------- blocks

# A report is a list of blocks: ("h1"|"h2"|"h3"|"p", text), ("table", Table), ("img", file, caption),
# ("pre", text), ("list", [text, ...]), ("details", summary, [blocks]).


def _inline_html(text: str) -> str:
    """Escape, then `code` and **bold**."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)


def to_markdown(blocks: list) -> str:
    """Render blocks as Markdown (images as relative links)."""
    out = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + block[1])
        elif kind == "p":
            out.append(block[1])
        elif kind == "table":
            out.append(to_markdown_table(block[1]))
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1]})\n\n*{block[2]}*" if block[2] else f"![]({block[1]})")
        elif kind == "pre":
            out.append("```\n" + block[1] + "\n```")
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "details":
            out.append(f"<details><summary>{html.escape(block[1])}</summary>\n\n{to_markdown(block[2])}\n\n</details>")
    return "\n\n".join(out) + "\n"


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1300px;margin:2em auto;padding:0 1.5em;
color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.3em}h2{font-size:1.3em;margin-top:1.8em;
border-bottom:1px solid #eee}h3{font-size:1.05em;margin-top:1.4em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em;font-variant-numeric:tabular-nums}
th,td{padding:.3em .7em;border-bottom:1px solid #e4e4e4;text-align:right;vertical-align:top}
th{background:#f6f6f6;vertical-align:bottom}th.label,td.label{text-align:left}
.sub{font-weight:normal;color:#777;font-size:.85em}tr.rule td{border-top:2px solid #999}
td.failed{color:#b00020;background:#fdecee}td.best b{color:inherit}
.caption{color:#555;font-size:.85em;max-width:1100px}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.5em 0}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}code{background:#f3f3f3;padding:0 .2em}
details{margin:.5em 0}summary{cursor:pointer;color:#1f4e8c}
"""


def to_html(blocks: list, base: Path, title: str) -> str:
    """Render blocks as one self-contained HTML page; images are read from `base` and embedded."""
    parts = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{_inline_html(block[1])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{_inline_html(block[1])}</p>")
        elif kind == "table":
            parts.append(to_html_table(block[1]))
        elif kind == "img":
            data = base64.b64encode((base / block[1]).read_bytes()).decode("ascii")
            caption = f"<figcaption class='caption'>{_inline_html(block[2])}</figcaption>" if block[2] else ""
            parts.append(f"<figure><img alt='{html.escape(block[2])}' src='data:image/png;base64,{data}'>"
                         f"{caption}</figure>")
        elif kind == "pre":
            parts.append(f"<pre>{html.escape(block[1])}</pre>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "details":
            inner = to_html(block[2], base, title="")
            parts.append(f"<details><summary>{_inline_html(block[1])}</summary>{inner}</details>")
    body = "\n".join(parts)
    if not title:
        return body
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


# ------------------------------------------------------------------------------------------- report


def summary_lines(comparison: Comparison) -> list[str]:
    """One sentence per column: mean error, failed tasks, best run."""
    where = f"tasks {comparison.tasks_text}" if comparison.subset else "the 20 tasks"
    lines = []
    for c in comparison.ours:
        runs = f"{c.runs} run{'s' if c.runs != 1 else ''}"
        text = (f"**{c.label}** ({runs}): mean error {fmt(c.mean_error, c.mean_sd)}% over {where}, "
                f"{fmt_count(c.failed, c.failed_sd)} of {len(c.tasks)} tasks failed")
        if (c.runs or 0) > 1:
            text += f"; best run {c.best_run}: {c.best_error:.1f}% ({c.best_failed} failed)"
        lines.append(text + ".")
    for c in comparison.published:
        note = " (mean of the published per-task means)" if c.note else ""
        lines.append(f"{c.label}: {fmt(c.mean_error, c.mean_sd)}% over {where}{note}, "
                     f"{fmt_count(c.failed, c.failed_sd)} failed.")
    return lines


def published_table() -> Table:
    """Every published summary row of eval/reference.py: mean error, failed tasks, best run, source."""
    from .reference import PUBLISHED

    rows = [{"model": p.label, "runs": p.runs or "", "mean error (%)": fmt(p.mean_error, p.mean_sd),
             "failed tasks": fmt_count(p.failed, p.failed_sd),
             "best run (failed)": f"{p.best_error:g} ({p.best_failed})" if _finite(p.best_error) else "",
             "source": p.source} for p in PUBLISHED.values()]  # fmt: skip
    table = frame_table(pd.DataFrame(rows), left=1)
    for row in table.rows:
        row[-1].left = True
    return table


def model_size(config: dict) -> str:
    """"controller 128, memory 32×32, 2 read heads" or "LSTM 128 units" (+ embedding)."""
    m = config.get("model", {})
    if m.get("model", "dnc") == "dnc":
        heads = m.get("read_heads")
        text = (f"{m.get('controller')} controller {m.get('controller_size')}, memory {m.get('memory_slots')}×"
                f"{m.get('word_size')}, {heads} read head{'s' if heads != 1 else ''}")
    else:
        text = f"{m.get('lstm_layers', 1)}×{m.get('lstm_size')} units"
    return text + (f", embedding {m['embedding']}" if m.get("embedding") else ", one-hot input")


def runs_table(comparison: Comparison) -> Table:
    """One row per run: configuration, directory, seed, checkpoint and step, mean error, failed tasks."""
    rows = []
    for c in comparison.ours:
        for r in c.results:
            t = task_errors(r.questions)
            rows.append({"model": c.label, "run": r.label, "size": model_size(r.config), "seed": r.seed,
                         "checkpoint": f"{r.checkpoint} @ step {r.step:,}",
                         "questions": f"{int(t['questions'].sum()):,}",
                         "mean error (%)": f"{t['error'].mean():.1f}", "failed": int(t["failed"].sum())})
    return frame_table(pd.DataFrame(rows), left=3)


def analysis_blocks(comparison: Comparison, top: int = 5, examples: int = 3) -> list:
    """Per task, for the best run of each configuration: the most common wrong answers and a few failed
    questions in their stories."""
    blocks = []
    for task in comparison.tasks:
        section = []
        for c in comparison.ours:
            run = next(r for r in c.results if r.label == c.best_run)
            if task not in run.tasks:
                continue
            a = error_analysis(run, task, top, examples)
            name = c.label if run.label in c.label else f"{c.label} ({run.label})"
            head = f"{name}: {a['wrong']} of {a['questions']} questions wrong"
            if not a["wrong"]:
                section.append(("p", head + "."))
                continue
            pairs = pd.DataFrame(a["pairs"], columns=["expected", "answered", "times"])
            pairs["share of errors"] = [f"{100 * n / a['wrong']:.0f}%" for n in pairs["times"]]
            section.append(("p", head + "; the most common mistakes:"))
            section.append(("table", frame_table(pairs, left=2)))
            if a["examples"]:
                section.append(("details", f"{len(a['examples'])} failed questions of {c.label} in their stories",
                                [("pre", "\n\n".join(format_story(e) for e in a["examples"]))]))
        if section:
            blocks.append(("h3", f"Task {task}: {TASK_NAMES[task]}"))
            blocks.extend(section)
    return blocks


def provenance_blocks(prov: dict) -> list:
    """Provenance as a list and the runs' configs."""
    items = [f"date: {prov['date']}", f"babi-dnc commit: `{prov['babi_dnc_commit']}`"
             + (f" (version {prov['babi_dnc_version']})" if prov.get("babi_dnc_version") else ""),
             f"python {prov['python']}, torch {prov['torch']}, host {prov['host']}",
             f"device: {prov['device']}", f"split: {prov['split']}, tasks {', '.join(map(str, prov['tasks']))}"]
    if prov.get("command"):
        items.append(f"command: `{prov['command']}`")
    for d in prov["data"]:
        items.append(f"data: {d.get('kind')} `{d.get('path')}`, sha256 ({d.get('sha256_of', 'archive')}) "
                     f"`{d.get('sha256')}`" + (f", revision {d['revision']}" if d.get("revision") else ""))
    for r in prov["runs"]:
        data = r["data"]
        train = r["config"].get("train", {})
        items.append(f"run `{r['run_dir']}`: {r['model']}, seed {r['seed']}, checkpoint {r['checkpoint']} at step "
                     f"{r['step']:,}, trained on {data.get('set_name')} tasks {data.get('tasks')} "
                     f"({train.get('optimizer')} lr {train.get('lr')}, batch {train.get('batch_size')}, device "
                     f"{train.get('device')})"
                     + (f" (notes: {' '.join(r['notes'])})" if r["notes"] else ""))
    configs = {r["run"]: r["config"] for r in prov["runs"]}
    return [("list", items), ("details", "run configurations (config.json)",
                              [("pre", json.dumps(configs, indent=2, default=str))])]


def write_report(comparison: Comparison, out_dir: str | Path, prov: dict | None = None,
                 story_tasks: list[int] | None = None) -> dict[str, Path]:
    """Write report.md, report.html, results.csv, questions.csv, comparison.csv and plots/ to `out_dir`.

    story_tasks: tasks whose first short test story gets a memory plot (default: the first few tasks).
    Returns {name: path} of what was written.
    """
    out = Path(out_dir)
    plots_dir = out / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    prov = prov or provenance(comparison)
    paths: dict[str, Path] = {}

    paths["results.csv"] = out / "results.csv"
    results_table(comparison.results).to_csv(paths["results.csv"], index=False, float_format="%.4f")
    paths["questions.csv"] = out / "questions.csv"
    questions = pd.concat([r.questions for r in comparison.results], ignore_index=True)[QUESTION_COLUMNS]
    questions.to_csv(paths["questions.csv"], index=False)
    paths["comparison.csv"] = out / "comparison.csv"
    comparison_frame(comparison).to_csv(paths["comparison.csv"], float_format="%.4f")

    errors_png = plot_task_errors(comparison, plots_dir / "task-errors.png")
    curves_png = plot_training_curves(comparison, plots_dir / "training-curves.png")
    stories = plot_stories(comparison, plots_dir, story_tasks)

    split = "test" if comparison.split == "test" else "validation"
    title = f"bAbI en-10k evaluation: {' vs '.join(c.label for c in comparison.ours)}"
    blocks: list = [("h1", title),
                    ("p", f"{split.capitalize()} split, tasks {comparison.tasks_text}, evaluated {prov['date']}."),
                    ("list", summary_lines(comparison)),
                    ("h2", "Error per task"), ("table", comparison_table(comparison)),
                    ("img", errors_png.relative_to(out).as_posix(),
                     "Per-task error of our runs and the published numbers; error bars: sd over runs; "
                     "dashed: the 5% failure threshold."),
                    ("details", "Other published results (all 20 tasks, for context)",
                     [("table", published_table())]),
                    ("h2", "Runs"), ("table", runs_table(comparison))]  # fmt: skip
    if curves_png is not None:
        blocks += [("h2", "Training"), ("img", curves_png.relative_to(out).as_posix(),
                                        "From each run's metrics.jsonl: training loss (smoothed; raw in light) "
                                        "and validation error.")]  # fmt: skip
    if stories:
        blocks.append(("h2", "Inside the DNC: memory over one test story per task"))
        blocks.append(("p", "Write and read weightings (slots × time), usage, allocation, erase vector, gates, "
                            "strengths, read modes and the temporal links' forward and backward weightings; "
                            "the time axis is the story's words, an answer slot shows the DNC's answer "
                            f"(→ answer, {FAILED_MARK} and the right one when wrong)."))
        for s in stories:
            right = sum(p == e for p, e in zip(s["predicted"], s["expected"], strict=True))
            blocks.append(("img", s["path"].relative_to(out).as_posix(),
                           f"{s['run']}, task {s['task']}, test story {s['story_id']} ({s['length']} words): "
                           f"{right} of {len(s['expected'])} answer words right."))
    blocks += [("h2", "Error analysis"),
               ("p", "For the best run of each model, per task: its most common mistakes and a few failed "
                     "questions in their stories (the sentences before the question, * marking the supporting "
                     "facts).")] + analysis_blocks(comparison)
    blocks += [("h2", "Provenance")] + provenance_blocks(prov)
    blocks.append(("p", "Files: `results.csv` (run × task), `questions.csv` (one row per question), "
                        "`comparison.csv` (the table above), `plots/`."))

    paths["report.md"] = out / "report.md"
    paths["report.md"].write_text(to_markdown(blocks))
    paths["report.html"] = out / "report.html"
    paths["report.html"].write_text(to_html(blocks, out, title))
    paths["plots"] = plots_dir
    return paths


def comparison_frame(comparison: Comparison) -> pd.DataFrame:
    """The comparison table as numbers: one row per task (and mean, failed, best), two columns per model
    (mean, sd)."""
    data = {}
    for c in comparison.columns:
        mean = {t: c.per_task["mean"].get(t, np.nan) for t in comparison.tasks}
        sd = {t: c.per_task["sd"].get(t, np.nan) for t in comparison.tasks}
        mean.update(mean_error=c.mean_error, failed_tasks=c.failed, best_run=c.best_error)
        sd.update(mean_error=c.mean_sd, failed_tasks=c.failed_sd, best_run=np.nan)
        data[f"{c.label}: mean"] = pd.Series(mean, dtype=float)
        data[f"{c.label}: sd"] = pd.Series(sd, dtype=float)
    frame = pd.DataFrame(data)
    frame.index.name = "row"
    return frame


__all__ = [
    "console_table", "comparison_table", "write_report", "to_json", "provenance", "error_analysis",
    "plot_task_errors", "plot_training_curves", "read_metrics", "git_commit", "Cell", "Table",
]  # fmt: skip
