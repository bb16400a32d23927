"""The evaluation as JSON for scripts (`babi-dnc eval --json`)."""

from __future__ import annotations

import math

import numpy as np

from ..aggregate import Column, Comparison, run_summary
from ..harness import task_errors


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
           "best_run": column.best_run, "source": column.source, "note": column.note,
           "training": list(column.training)}
    return out


def to_json(comparison: Comparison, failures: list[tuple] | None = None) -> dict:
    """Per run and task: questions, wrong, error (%), failed; per configuration and published model: the
    aggregated columns; the runs that could not be evaluated."""
    runs = []
    for r in comparison.results:
        t = task_errors(r.questions)
        summary = run_summary(t, r.untrained)
        runs.append({
            "run": r.label, "run_dir": str(r.run_dir), "model": r.model_kind, "seed": r.seed, "step": r.step,
            "checkpoint": r.checkpoint, "split": r.split, "mean_error": summary["mean_error"],
            "failed_tasks": summary["failed"], "untrained_tasks": list(r.untrained), "training": list(r.training),
            "tasks": {int(task): {"name": row["name"], "questions": int(row["questions"]), "wrong": int(row["wrong"]),
                                  "error": float(row["error"]), "failed": bool(row["failed"])}
                      for task, row in t.iterrows()},
        })
    return _clean({
        "split": comparison.split,
        "tasks": comparison.tasks,
        "runs": runs,
        "models": [column_json(c) for c in comparison.ours],
        "published": [column_json(c) for c in comparison.published],
        "errors": [{"run": str(p), "message": m} for p, m in failures or []],
    })

