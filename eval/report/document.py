"""The report document: built once as a list of blocks (headings, paragraphs, tables, images, preformatted
text, collapsible sections) and rendered twice, to Markdown (images as files next to it) and to one
self-contained HTML file (images base64-embedded, inline CSS, no scripts, nothing fetched).
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

from ..aggregate import Comparison, results_table
from ..harness import QUESTION_COLUMNS
from .analysis import analysis_blocks
from .plots import plot_stories, plot_task_errors, plot_training_curves
from .provenance import provenance, provenance_blocks
from .tables import (
    FAILED_MARK,
    FAILED_PERCENT,
    comparison_frame,
    comparison_table,
    fmt,
    fmt_count,
    published_table,
    runs_table,
    to_html_table,
    to_markdown_table,
)

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


def summary_lines(comparison: Comparison) -> list[str]:
    """One sentence per column: mean error, failed tasks, best run."""
    where = f"tasks {comparison.tasks_text}" if comparison.subset else "the 20 tasks"
    lines = []
    for c in comparison.ours:
        runs = f"{c.runs} run{'s' if c.runs != 1 else ''}"
        text = (f"**{c.label}** ({runs}): mean error {fmt(c.mean_error, c.mean_sd)}% over {where}, "
                f"{fmt_count(c.failed, c.failed_sd)} of {len(comparison.scored)} tasks failed")
        if (c.runs or 0) > 1:
            text += f"; best run {c.best_run}: {c.best_error:.1f}% ({c.best_failed} failed)"
        lines.append(text + ".")
    for c in comparison.published:
        note = " (mean of the published per-task means)" if c.note else ""
        lines.append(f"{c.label}: {fmt(c.mean_error, c.mean_sd)}% over {where}{note}, "
                     f"{fmt_count(c.failed, c.failed_sd)} failed.")
    return lines


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
    title = f"bAbI {comparison.sets_text} evaluation: {' vs '.join(c.label for c in comparison.ours)}"
    blocks: list = [("h1", title),
                    ("p", f"{split.capitalize()} split, tasks {comparison.tasks_text}, evaluated {prov['date']}."),
                    ("list", summary_lines(comparison)),
                    ("h2", "Error per task"), ("table", comparison_table(comparison)),
                    ("img", errors_png.relative_to(out).as_posix(),
                     "Per-task error of our runs and the published numbers; error bars: sd over runs; "
                     f"dashed: the {FAILED_PERCENT} failure threshold."),
                    ("details", "Other published results (all 20 tasks, for context)",
                     [("table", published_table())]),
                    ("h2", "Runs"), ("table", runs_table(comparison))]
    if curves_png is not None:
        blocks += [("h2", "Training"), ("img", curves_png.relative_to(out).as_posix(),
                                        "From each run's metrics.jsonl: training loss (smoothed; raw in light) "
                                        "and validation error.")]
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

