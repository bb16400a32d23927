"""The tables of an evaluation: the comparison (tasks x models), the runs, the published results; each as
a Table, rendered for the terminal (rich), Markdown and HTML."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from rich import box
from rich.table import Table as RichTable
from rich.text import Text

from babi_dnc.data import TASK_NAMES, format_task_spec
from babi_dnc.metrics import FAILED_ABOVE, is_failed
from babi_dnc.models import describe_model

from ..aggregate import Column, Comparison
from ..harness import task_errors
from ..reference import PUBLISHED

FAILED_MARK = "✗"
NOTE_MARK = "†"
FAILED_PERCENT = f"{100 * FAILED_ABOVE:g}%"  # "5%", for captions and labels


@dataclass
class Cell:
    """One table cell: text, and how to show it."""

    text: str
    bold: bool = False
    failed: bool = False  # a failed task's error (metrics.is_failed): marked
    left: bool = False  # left-aligned (labels)


@dataclass
class Table:
    """A table for every renderer: header (with an optional second line per column) and rows of cells."""

    header: list[str]
    rows: list[list[Cell]]
    subheader: list[str] | None = None
    caption: str = ""
    rules: set[int] = field(default_factory=set)  # rows with a rule above them



def finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def fmt(mean, sd=None, digits: int = 1) -> str:
    """"12.3 ± 4.5", "12.3" (no sd), "" (no value)."""
    if not finite(mean):
        return ""
    text = f"{mean:.{digits}f}"
    return f"{text} ± {sd:.{digits}f}" if finite(sd) else text


def fmt_count(mean, sd=None) -> str:
    """A (mean) number of tasks: "3" for one run, "2.5 ± 0.7" over runs."""
    if not finite(mean):
        return ""
    if not finite(sd) and float(mean).is_integer():
        return str(int(mean))
    return fmt(mean, sd)


def column_subtitle(column: Column) -> str:
    """The second header line: runs (and the checkpoint step of a single run of ours)."""
    runs = column.runs or 0
    text = f"{runs} run{'s' if runs != 1 else ''}" if runs else "best run"
    if column.kind == "ours" and column.per_run is not None and len(column.per_run) == 1:
        text += f", step {int(column.per_run['step'].iloc[0]):,}"
    return ", ".join([text, *column.training])


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
        untrained = _untrained_note(task, comparison)
        row = [Cell(f"{task} {TASK_NAMES[task]}{untrained}", left=True), Cell(f"{questions.get(task, 0):,}")]
        for c in columns:
            if task not in c.per_task.index or not finite(c.per_task.loc[task, "mean"]):
                row.append(Cell("–"))
                continue
            mean, sd = float(c.per_task.loc[task, "mean"]), c.per_task.loc[task, "sd"]
            row.append(Cell(fmt(mean, sd), bold=c.key in best[task], failed=is_failed(mean / 100)))
        rows.append(row)

    rules.add(len(rows))
    label = "mean error" + (f", tasks {comparison.tasks_text}" if comparison.subset else "")
    means = [c.mean_error for c in columns if finite(c.mean_error)]
    low = round(min(means), 1) if means else None
    row = [Cell(label, left=True), Cell("")]
    for c in columns:
        text = fmt(c.mean_error, c.mean_sd) + (NOTE_MARK if c.note else "") + _tasks_note(c, comparison)
        row.append(Cell(text, bold=finite(c.mean_error) and round(c.mean_error, 1) == low))
    rows.append(row)
    rows.append([Cell(f"failed tasks (> {FAILED_PERCENT})", left=True), Cell("")]
                + [Cell(fmt_count(c.failed, c.failed_sd) + (NOTE_MARK if c.note and finite(c.failed) else ""))
                   for c in columns])
    rows.append([Cell("best run (failed tasks)", left=True), Cell("")]
                + [Cell(f"{c.best_error:.1f} ({c.best_failed})" if finite(c.best_error) else "") for c in columns])
    return Table(header=["task", "questions"] + [c.label for c in columns], rows=rows, rules=rules,
                 subheader=["", ""] + [column_subtitle(c) for c in columns], caption=table_caption(comparison))


def _untrained_by(task: int, comparison: Comparison) -> list[str]:
    """The labels of our columns that did not train `task`."""
    return [c.label for c in comparison.ours if task in c.untrained]


def _untrained_note(task: int, comparison: Comparison) -> str:
    """" (untrained)" on a task none of our runs trained on; " (untrained: LSTM)" when only some did not."""
    without = _untrained_by(task, comparison)
    if not without:
        return ""
    return " (untrained)" if len(without) == len(comparison.ours) else f" (untrained: {', '.join(without)})"


def _partly_trained(comparison: Comparison) -> bool:
    """Whether some untrained row was trained by some of our columns."""
    return any(len(_untrained_by(t, comparison)) < len(comparison.ours) for t in comparison.untrained)


TRAINING_CHANGES = {  # the words of data.BabiData.training_changes, explained
    "task 15 rewritten": "task 15's training stories rewritten so that the answer is no more often feared than "
                         "the other animals, its test stories untouched",
    "task 16 rewritten": "task 16's training stories rewritten so that the answer colour occurs once, as Franke "
                         "et al. 2018 did, its test stories untouched",
    "from en (1k)": "a task whose en-10k training file is missing here trained on the en file's 1,000 questions",
}


def _training_note(comparison: Comparison) -> str | None:
    """Which of our runs trained on data other than the set's own files, and what that means."""
    changed = [c for c in comparison.ours if c.training]
    if not changed:
        return None
    said = {change for c in changed for change in c.training}
    meanings = [text for words, text in TRAINING_CHANGES.items() if any(words in change for change in said)]
    return ("Training data: " + "; ".join(f"{c.label}, {', '.join(c.training)}" for c in changed)
            + (f" ({'; '.join(meanings)})." if meanings else "."))


def _reader_note(comparison: Comparison) -> str | None:
    """Which of our columns read each whole story backwards (reader scope "story"), and what that means."""
    whole = [c.label for c in comparison.ours
             if any(r.model_config.reader_scope == "story" for r in c.results)]
    if not whole:
        return None
    return (f"Whole-story backward reader: {', '.join(whole)} read each story from its end (BiADNC's reader), so "
            "its answers also see the sentences told after their question; a comparison, not what chat answers.")


def _tasks_note(column: Column, comparison: Comparison) -> str:
    """" (tasks 1)" when one of our columns was evaluated on fewer tasks than the table shows."""
    if column.kind == "ours" and column.tasks != comparison.tasks:
        return f" (tasks {','.join(map(str, column.tasks))})"
    return ""


def table_caption(comparison: Comparison) -> str:
    """What the numbers in the table are."""
    split = "test" if comparison.split == "test" else "validation"
    parts = [f"% question error on the {split} split (a question counts only if every answer word is right); "
             f"mean ± sd over runs; bold: best of the row; {FAILED_MARK}: failed (error > {FAILED_PERCENT})."]
    if comparison.split != "test":
        parts.append("The published numbers are test errors.")
    if comparison.untrained:
        tasks, rows, them = ("task", "its row is", "it") if len(comparison.untrained) == 1 else \
            ("tasks", "their rows are", "them")
        parts.append(f"Untrained: {tasks} {format_task_spec(comparison.untrained)} had no training stories (a "
                     f"missing file); {rows} shown, but no mean or failed-task count includes {them}"
                     + (", so that every model's mean is over the same tasks; where a row names models, only those "
                        "had no training stories." if _partly_trained(comparison) else "."))
    if (training := _training_note(comparison)) is not None:
        parts.append(training)
    if (reader := _reader_note(comparison)) is not None:
        parts.append(reader)
    if comparison.subset and comparison.published:
        parts.append(f"{NOTE_MARK} Published over tasks {comparison.tasks_text} only: the mean of the per-task "
                     f"means, and the number of those tasks whose mean error is above {FAILED_PERCENT} (the paper's "
                     "20-task numbers: "
                     "DNC1 16.7 ± 7.6, 11.2 ± 5.4 failed; LSTM 512 27.3 ± 0.8, 17.1 ± 1.0 failed).")
    if comparison.published:
        parts.append("Published: Graves et al., Nature 538 (2016), Extended Data Table 1 (20 runs each); "
                     "TF DNC: one run of github.com/bgavran/DNC.")
    smaller = [s for s in comparison.sets if s != "en-10k"]
    if smaller and comparison.published:
        parts.append(f"Caveat: the published numbers are for en-10k (10,000 training questions per task); runs on "
                     f"{' and '.join(smaller)} (1,000 per task) learned from a tenth of that, so they are not a "
                     "like-for-like comparison.")
    return " ".join(parts)


def _cell_text(cell: Cell) -> str:
    return f"{cell.text} {FAILED_MARK}" if cell.failed else cell.text


def to_rich(table: Table, title: str | None = None):
    """A rich Table: bold best cells, failed cells red with a mark."""
    out = RichTable(title=title, title_justify="left", box=box.SIMPLE_HEAD, caption=table.caption,
                    caption_justify="left", pad_edge=False)
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
    title = f"bAbI {comparison.sets_text}, {split} error (%), tasks {comparison.tasks_text}"
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


def published_table() -> Table:
    """Every published summary row of eval/reference.py: mean error, failed tasks, best run, source."""
    rows = [{"model": p.label, "runs": p.runs or "", "mean error (%)": fmt(p.mean_error, p.mean_sd),
             "failed tasks": fmt_count(p.failed, p.failed_sd),
             "best run (failed)": f"{p.best_error:g} ({p.best_failed})" if finite(p.best_error) else "",
             "source": p.source} for p in PUBLISHED.values()]
    table = frame_table(pd.DataFrame(rows), left=1)
    for row in table.rows:
        row[-1].left = True
    return table


def runs_table(comparison: Comparison) -> Table:
    """One row per run: configuration, directory, seed, checkpoint and step, mean error, failed tasks."""
    rows = []
    for c in comparison.ours:
        for r in c.results:
            t = task_errors(r.questions)
            size = describe_model(r.model_config, details=True)
            rows.append({"model": c.label, "run": r.label, "size": size, "seed": r.seed,
                         "checkpoint": f"{r.checkpoint} @ step {r.step:,}",
                         "questions": f"{int(t['questions'].sum()):,}",
                         "mean error (%)": f"{t['error'].mean():.1f}", "failed": int(t["failed"].sum())})
    return frame_table(pd.DataFrame(rows), left=3)


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

