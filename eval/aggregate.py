"""Per-task tables and the aggregation of several runs, the way Graves et al. (2016) report them.

    groups = group_runs(results)                 # runs with the same configuration (seeds) together
    column = summarize_group(groups[0])          # per task mean +- sd over runs, mean error +- sd, ...
    comparison = compare(results)                # our columns + the published ones, over the same tasks

Conventions: errors are in % of questions; a task has failed above 5% (babi_dnc.metrics); a run's mean error is the mean
over the tasks it was evaluated on; "sd" is the sample standard deviation over runs (ddof=1, NaN for a
single run); the best run is the one with the lowest mean error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from babi_dnc.data import TASK_NAMES, format_task_spec
from babi_dnc.data.config import DataConfig
from babi_dnc.metrics import FAILED_ABOVE, is_failed

from .harness import RunResult, task_errors
from .reference import PUBLISHED, TABLE_COLUMNS, published_tasks

MODEL_LABELS = {"dnc": "DNC", "lstm": "LSTM"}
# Settings that do not change what a run learns (or that differ between seeds by design).
IGNORED_FOR_GROUPING = {
    "train": {"seed", "progress", "device", "threads", "tensorboard", "max_minutes", "amp", "compile",
              "log_every", "image_every", "checkpoint_every"},
    "data": {"data_dir"},
}


@dataclass
class Column:
    """One column of the comparison: one of our configurations (one or more runs) or a published model.

    per_task: DataFrame indexed by task with "mean" and "sd" (% error; sd NaN for a single run).
    mean_error, mean_sd: mean over runs of each run's mean error over its tasks, and its sd.
    failed, failed_sd: the same for the number of failed tasks.
    best_error, best_failed, best_run: the run with the lowest mean error (None if unknown).
    note: a caveat shown with the column (e.g. published numbers over a subset of tasks).
    """

    key: str
    label: str
    kind: str  # "ours" or "published"
    per_task: pd.DataFrame
    mean_error: float | None
    mean_sd: float | None
    failed: float | None
    failed_sd: float | None
    best_error: float | None = None
    best_failed: int | None = None
    best_run: str | None = None
    runs: int | None = None
    source: str = ""
    note: str | None = None
    per_run: pd.DataFrame | None = None  # ours: index run label; mean_error, failed, step, seed
    untrained: list[int] = field(default_factory=list)  # ours: tasks shown but left out of the means
    training: list[str] = field(default_factory=list)  # ours: how the runs' training stories differ from the set's
    results: list[RunResult] = field(default_factory=list, repr=False)

    @property
    def tasks(self) -> list[int]:
        return [int(t) for t in self.per_task.index]


# ------------------------------------------------------------------------------------------ one run


def run_summary(per_task: pd.DataFrame, untrained=()) -> dict:
    """A run's mean error (%) over the tasks it was trained on and its number of failed tasks among them
    (`untrained`: evaluated tasks that had no training stories, shown but not counted)."""
    scored = per_task.drop(index=[t for t in untrained if t in per_task.index])
    return {"mean_error": float(scored["error"].mean()), "failed": int(scored["failed"].sum()),
            "tasks": len(scored)}


def results_table(results: list[RunResult]) -> pd.DataFrame:
    """One row per run x task: run, run_dir, model, seed, step, checkpoint, split, training (how its training
    stories differ from the set's files, "; "-joined; empty: they do not), task, name, questions, wrong,
    error (%), failed."""
    frames = []
    for r in results:
        t = task_errors(r.questions).reset_index()
        t.insert(0, "run", r.label)
        t.insert(1, "run_dir", str(r.run_dir))
        t.insert(2, "model", r.model_kind)
        t.insert(3, "seed", r.seed)
        t.insert(4, "step", r.step)
        t.insert(5, "checkpoint", r.checkpoint)
        t.insert(6, "split", r.split)
        t.insert(7, "training", "; ".join(r.training))
        frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# ------------------------------------------------------------------------------------------ groups


def group_key(config: dict) -> str:
    """What makes runs "the same configuration": the config without seeds, paths and speed settings."""
    reduced = {}
    for section, values in config.items():
        if isinstance(values, dict):
            values = {k: v for k, v in values.items() if k not in IGNORED_FOR_GROUPING.get(section, set())}
        reduced[section] = values
    return json.dumps(reduced, sort_keys=True, default=str)


def group_runs(results: list[RunResult]) -> list[list[RunResult]]:
    """Runs with the same configuration (seeds of one set-up) together, in the order first seen; a run
    evaluated twice (the same folder named twice) counts once."""
    groups: dict[str, list[RunResult]] = {}
    seen: set = set()
    for r in results:
        where = r.run_dir.resolve()
        if where in seen:
            continue
        seen.add(where)
        groups.setdefault(group_key(r.config) + r.split, []).append(r)
    return list(groups.values())


def _sd(values) -> float:
    """Sample standard deviation (ddof=1); NaN for fewer than two values."""
    values = np.asarray(list(values), dtype=float)
    return float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def summarize_group(runs: list[RunResult], key: str, label: str, leave_out: list[int] = ()) -> Column:
    """Aggregate the runs of one configuration as the paper does: per task mean +- sd over runs, the mean
    error +- sd and failed tasks +- sd over runs, and the best single run; the means and counts leave out the
    runs' untrained tasks and `leave_out` (those another group of the table did not train)."""
    per_run_tasks = {r.label: task_errors(r.questions)["error"] for r in runs}
    errors = pd.DataFrame(per_run_tasks)  # [task, run]; NaN where a run lacks a task
    errors.index.name = "task"
    per_task = pd.DataFrame({
        "mean": errors.mean(axis=1),
        "sd": errors.std(axis=1, ddof=1),
        "runs": errors.notna().sum(axis=1),
    })
    per_run = pd.DataFrame([
        {"run": r.label, **run_summary(task_errors(r.questions), sorted({*r.untrained, *leave_out})),
         "step": r.step, "seed": r.seed}
        for r in runs
    ]).set_index("run")
    best = per_run["mean_error"].idxmin()
    return Column(
        key=key, label=label, kind="ours", per_task=per_task,
        mean_error=float(per_run["mean_error"].mean()), mean_sd=_sd(per_run["mean_error"]),
        failed=float(per_run["failed"].mean()), failed_sd=_sd(per_run["failed"]),
        best_error=float(per_run.loc[best, "mean_error"]), best_failed=int(per_run.loc[best, "failed"]),
        best_run=str(best), runs=len(runs), per_run=per_run, results=list(runs),
        source=", ".join(str(r.run_dir) for r in runs), untrained=sorted({t for r in runs for t in r.untrained}),
        training=runs[0].training,
    )


def group_labels(groups: list[list[RunResult]]) -> list[str]:
    """Column headers: "DNC", "LSTM"; when two groups share a model, the run folder is added (with its
    parent folder, or a number, while that is still ambiguous)."""
    kinds = [MODEL_LABELS.get(g[0].model_kind, g[0].model_kind.upper()) for g in groups]
    roots = [g[0].run_dir.parent if g[0].run_dir.name.startswith("seed-") else g[0].run_dir for g in groups]
    labels = list(kinds)
    for depth in (1, 2):
        names = ["/".join(root.parts[-depth:]) for root in roots]
        labels = [kind if kinds.count(kind) == 1 else f"{kind} ({name})"
                  for kind, name in zip(kinds, names, strict=True)]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{label} #{labels[:i].count(label) + 1}" if labels.count(label) > 1 else label
            for i, label in enumerate(labels)]


# ------------------------------------------------------------------------------------------ comparison


@dataclass
class Comparison:
    """Everything the tables and reports show: our columns, the published columns, the tasks (rows)."""

    ours: list[Column]
    published: list[Column]
    tasks: list[int]
    split: str
    results: list[RunResult]

    @property
    def columns(self) -> list[Column]:
        return self.ours + self.published

    @property
    def untrained(self) -> list[int]:
        """Rows that our runs were not trained on (no training stories): shown, left out of every mean."""
        return sorted({t for c in self.ours for t in c.untrained})

    @property
    def scored(self) -> list[int]:
        """The tasks every mean and failed-task count of the table is over."""
        return [t for t in self.tasks if t not in self.untrained]

    @property
    def subset(self) -> bool:
        """True when the means are not over all 20 tasks."""
        return self.scored != list(TASK_NAMES)

    @property
    def tasks_text(self) -> str:
        return format_task_spec(self.scored)

    @property
    def sets(self) -> list[str]:
        """The bAbI sets our runs were trained on ("en-10k", "en")."""
        return sorted({r.data_config.set_name for r in self.results}) or [DataConfig().set_name]

    @property
    def sets_text(self) -> str:
        return " and ".join(self.sets)

    def best_per_task(self) -> dict[int, set[str]]:
        """The column keys with the lowest error (to one decimal, as shown) in each row."""
        best = {}
        for task in self.tasks:
            values = {c.key: round(float(c.per_task.loc[task, "mean"]), 1) for c in self.columns
                      if task in c.per_task.index and pd.notna(c.per_task.loc[task, "mean"])}
            low = min(values.values(), default=None)
            best[task] = {k for k, v in values.items() if v == low}
        return best


def published_column(key: str, tasks: list[int] | None = None, scored: list[int] | None = None) -> Column:
    """`reference.PUBLISHED[key]` over `tasks` (default all 20) as a comparison column, its summary numbers
    over the `scored` tasks (default: all of `tasks`; the rest are rows only, e.g. an untrained task).

    Over all 20 tasks the summary numbers are the paper's. Over a subset they are derived from the
    per-task columns: the mean of the per-task means (no sd, which needs the single runs) and the number
    of tasks whose mean is above 5%; `note` says so.
    """
    p = PUBLISHED[key]
    if p.mean_column is None:
        raise ValueError(f"{key} has no per-task numbers")
    frame = published_tasks()
    tasks = sorted(tasks) if tasks else list(frame.index)
    per_task = pd.DataFrame({
        "mean": frame.loc[tasks, p.mean_column].astype(float),
        "sd": frame.loc[tasks, p.sd_column].astype(float) if p.sd_column else float("nan"),
    }, index=pd.Index(tasks, name="task"))
    scored = sorted(scored) if scored is not None else tasks
    if scored == list(frame.index):
        return Column(key, p.label, "published", per_task, p.mean_error, p.mean_sd, p.failed, p.failed_sd,
                      p.best_error, p.best_failed, runs=p.runs, source=p.source)
    return Column(
        key, p.label, "published", per_task,
        mean_error=float(per_task.loc[scored, "mean"].mean()), mean_sd=None,
        failed=float(sum(is_failed(m / 100) for m in per_task.loc[scored, "mean"])), failed_sd=None, runs=p.runs,
        source=p.source, note="over these tasks only: the mean of the published per-task means, and the tasks "
                              f"whose mean is above {100 * FAILED_ABOVE:g}%",
    )


def published_columns(tasks: list[int], keys=None, scored: list[int] | None = None) -> list[Column]:
    """The published models of the table (DNC1, LSTM 512, the seed DNC) over `tasks`, summaries over `scored`."""
    return [published_column(k, tasks, scored) for k in (keys or TABLE_COLUMNS)]


def compare(results: list[RunResult], published: bool = True) -> Comparison:
    """Group the runs, aggregate each group, and add the published columns over the same tasks."""
    groups = group_runs(results)
    untrained = sorted({t for r in results for t in r.untrained})  # every column's means over the same tasks
    ours = []
    for i, (g, label) in enumerate(zip(groups, group_labels(groups), strict=True)):
        ours.append(summarize_group(g, key=f"ours{i}", label=label, leave_out=untrained))
    tasks = sorted({t for c in ours for t in c.tasks})
    comparison = Comparison(ours=ours, published=[], tasks=tasks, split=results[0].split if results else "test",
                            results=list(results))
    if published and comparison.scored:  # summaries over the scored tasks, rows for every task
        comparison.published = published_columns(tasks, scored=comparison.scored)
    return comparison
