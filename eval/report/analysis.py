"""Error analysis: per task, the most common wrong answers of a run and a few failed questions in their
stories."""

from __future__ import annotations

import pandas as pd

from babi_dnc.data import TASK_NAMES

from ..aggregate import Comparison
from ..harness import RunResult, story_text
from .tables import frame_table


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
            "pairs": [(e, p, int(n)) for (e, p), n in pairs.items()], "examples": stories}


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

