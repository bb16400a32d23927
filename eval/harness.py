"""The evaluation harness: a trained run and a bAbI split -> one row per question.

    results, failures = evaluate_runs(["runs/dnc", "runs/lstm"], EvalConfig(split="test"))
    results[0].questions        # DataFrame: task, story_id, q, question, expected, predicted, correct, ...

A run is a directory written by `babi-dnc train` (config.json, vocab.json, checkpoints/); a directory
with seed-N sub-directories stands for all of its seeds. Each run is scored on the tasks it was trained
on, with its own vocabulary and the data settings saved in its config (the data folder can be
overridden). The scores are those of babi_dnc.metrics, the functions validation uses: a question is
correct only if every one of its answer words is.

A run that does not exist, a checkpoint that does not load or a vocabulary that does not fit the data
raises a `UserError`; `evaluate_runs` collects those per run and goes on with the others.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import torch

from babi_dnc import metrics
from babi_dnc.data import (
    TASK_NAMES,
    BabiData,
    Vocabulary,
    format_task_spec,
    iterate_batches,
    parse_task_spec,
    select_tasks,
    tasks_in,
)
from babi_dnc.data.config import DataConfig, load_data
from babi_dnc.errors import DataError, UserError, VocabularyError
from babi_dnc.metrics import per_task_errors, question_correct
from babi_dnc.models import ModelConfig
from babi_dnc.pretrained import PREFIX, pretrained_root
from babi_dnc.runs import LoadedRun, expand, load_run
from babi_dnc.train import resolve_device

SPLITS = ("test", "valid")
CHECKPOINTS = ("best", "latest")
QUESTION_COLUMNS = ["run", "task", "story_id", "q", "question", "expected", "predicted", "correct"]


@dataclass
class EvalConfig:
    """What to evaluate and how."""

    split: str = "test"  # "test" or "valid" (the held-out part of the training files)
    data_dir: str | Path | None = None  # None: the data_dir in each run's config, else $BABI_DNC_DATA / the Hub
    checkpoint: str = "best"  # "best" (lowest validation error) or "latest"
    device: str = "cpu"  # "cpu", "cuda", "cuda:N" or "auto"
    batch_size: int = 64
    tasks: list[int] | None = None  # only these of each run's tasks (None: all it was trained on)

    def __post_init__(self):
        if self.split not in SPLITS:
            raise UserError(f"--split must be one of {', '.join(SPLITS)}, not {self.split!r}.")
        if self.checkpoint not in CHECKPOINTS:
            raise UserError(f"--checkpoint must be one of {', '.join(CHECKPOINTS)}, not {self.checkpoint!r}.")
        if self.batch_size < 1:
            raise UserError("--batch-size must be at least 1.")


@dataclass
class RunResult:
    """One evaluated run: where it came from and one row per question of the split."""

    run_dir: Path
    label: str  # short name: the run folder, or "<folder>/seed-N"
    model_kind: str  # "dnc" or "lstm"
    config: dict  # the run's config.json, as saved
    model_config: ModelConfig
    data_config: DataConfig
    checkpoint: str  # the checkpoint folder that was loaded ("best", "latest", ...)
    step: int  # its training step
    seed: int | None
    split: str
    tasks: list[int]
    questions: pd.DataFrame  # QUESTION_COLUMNS + words, row (index into `dataset`)
    data_source: dict  # data.BabiData.source: kind, path, sha256
    device: str
    notes: list[str] = field(default_factory=list)  # warnings met on the way (e.g. missing files)
    untrained: list[int] = field(default_factory=list)  # evaluated tasks without training stories (a missing file)
    training: list[str] = field(default_factory=list)  # how its training stories differ from the set's files
    model: Any = field(default=None, repr=False)  # the loaded model (for memory plots)
    dataset: Any = field(default=None, repr=False)  # the evaluated split (datasets.Dataset)
    vocab: Vocabulary | None = field(default=None, repr=False)


# ------------------------------------------------------------------------------------------- scoring


def score_answers(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> pd.DataFrame:
    """One row per answer word ('-' step) of a batch: its story, question, target and predicted ids.

    logits [B, T, V]; batch from `data.collate` (targets, question, task, story; "index" if present).
    Columns: row (the story's index in its dataset, or its position in the batch), task, story_id, q
    (question index within the story), target, predicted.
    """
    answer = batch["question"] >= 0  # [B, T]
    b, t = answer.nonzero(as_tuple=True)  # in (story, time) order
    predicted = logits.argmax(-1)  # [B, T]
    rows = batch["index"] if "index" in batch else torch.arange(answer.shape[0])
    cpu = lambda x: x.detach().cpu().numpy()
    return pd.DataFrame({
        "row": cpu(rows[b.cpu()]),
        "task": cpu(batch["task"][b]),
        "story_id": cpu(batch["story"][b]),
        "q": cpu(batch["question"][b, t]),
        "target": cpu(batch["targets"][b, t]),
        "predicted": cpu(predicted[b, t]),
    })


def score_questions(answers: pd.DataFrame, vocab: Vocabulary) -> pd.DataFrame:
    """Answer words -> one row per question, right only if every answer word is (metrics.question_correct).

    answers: as from `score_answers` (several batches concatenated). Returns the columns task, story_id,
    q, expected, predicted (answer words joined by ","), correct (bool), words (answer words), row;
    sorted by task, story and question.
    """
    words = np.array(vocab.words + [Vocabulary.UNK], dtype=object)
    frame = answers.assign(
        expected=words[np.clip(answers["target"].to_numpy(), 0, vocab.size)],
        predicted=words[np.clip(answers["predicted"].to_numpy(), 0, vocab.size)],
    )
    grouped = frame.groupby(["row", "q"], sort=False)
    out = grouped.agg(
        task=("task", "first"),
        story_id=("story_id", "first"),
        expected=("expected", ",".join),
        predicted=("predicted", ",".join),
        words=("q", "size"),
    ).reset_index()
    wrong_word = torch.tensor(answers["target"].to_numpy() != answers["predicted"].to_numpy())  # [K]
    question = torch.tensor(grouped.ngroup().to_numpy())  # [K] the row of `out` of each answer word
    out["correct"] = question_correct(wrong_word, question, len(out)).numpy()
    out = out.sort_values(["task", "story_id", "q"], kind="stable", ignore_index=True)
    return out[["task", "story_id", "q", "expected", "predicted", "correct", "words", "row"]]


def task_errors(questions: pd.DataFrame) -> pd.DataFrame:
    """Per task (metrics.task_errors): questions, wrong, error (%), failed (error above 5%); indexed by task."""
    errors = metrics.task_errors(questions["task"], questions["correct"])
    table = pd.DataFrame({"questions": [e.questions for e in errors.values()],
                          "wrong": [e.wrong for e in errors.values()]},
                         index=pd.Index(list(errors), name="task"))
    table["error"] = [100.0 * e.error for e in errors.values()]
    table["failed"] = [e.failed for e in errors.values()]
    table.insert(0, "name", [TASK_NAMES.get(int(t), "") for t in table.index])
    return table


# ------------------------------------------------------------------------------------------- running


@torch.no_grad()
def predict(model: torch.nn.Module, dataset, vocab: Vocabulary, batch_size: int = 64,
            device: torch.device | str = "cpu", progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Run `model` over every story of `dataset` in length-bucketed batches; score every question.

    progress(done, total) is called after each batch with the number of stories done.
    """
    model.eval()
    parts, done, total = [], 0, len(dataset)
    for batch in iterate_batches(dataset, batch_size, shuffle=False, bucket=True):
        logits = model(batch["ids"].to(device), mask=batch["mask"].to(device))[0]  # [B, T, V]
        parts.append(score_answers(logits, batch))
        done += len(batch["index"])
        if progress is not None:
            progress(done, total)
    answers = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        {c: np.zeros(0, dtype=np.int64) for c in ("row", "task", "story_id", "q", "target", "predicted")})
    return score_questions(answers, vocab)


def run_label(run_dir: Path) -> str:
    """"dnc" for runs/dnc, "dnc/seed-1" for runs/dnc/seed-1, "pretrained:dnc" for the shipped DNC."""
    if run_dir.parent == pretrained_root():
        return PREFIX + run_dir.name
    return f"{run_dir.parent.name}/{run_dir.name}" if run_dir.name.startswith("seed-") else run_dir.name


def check_vocabulary(dataset, vocab: Vocabulary, run_dir: Path, split: str) -> None:
    """VocabularyError if any word of the split (story or answer) is outside the run's vocabulary."""
    table = dataset.select_columns(["tokens", "ids", "answer_words", "answer_ids"]).with_format("arrow")[:]
    unknown: set[str] = set()
    for words, ids in (("tokens", "ids"), ("answer_words", "answer_ids")):
        flat_ids = pc.list_flatten(table.column(ids))
        is_unknown = pc.equal(flat_ids, vocab.unk_id)
        if pc.any(is_unknown).as_py():
            unknown.update(pc.filter(pc.list_flatten(table.column(words)), is_unknown).to_pylist())
    if unknown:
        shown = ", ".join(sorted(unknown)[:5]) + (", ..." if len(unknown) > 5 else "")
        raise VocabularyError(
            f"{len(unknown)} words of the {split} stories ({shown}) are not in the vocabulary of {run_dir}, "
            "so the data does not match the run: evaluate it on the data it was trained on (--data-dir)."
        )


def load_split(data: DataConfig, vocab: Vocabulary, eval_config: EvalConfig,
               cache: dict | None = None) -> tuple[BabiData, list[str]]:
    """The run's bAbI data (its set, tasks, validation split) encoded with its vocabulary, and the warnings
    met while loading. `cache` (a dict) shares loads between runs with the same settings."""
    wanted = [t for t in parse_task_spec(data.tasks) if t in (eval_config.tasks or ())]
    if wanted:  # --tasks: only those are loaded (and warned about); none of the run's: evaluate_run says so
        data = replace(data, tasks=format_task_spec(wanted))
    key = (data.loading_key(eval_config.data_dir), vocab.fingerprint())
    if cache is not None and key in cache:
        return cache[key]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_data(data, vocab, eval_config.data_dir)
    notes = [str(w.message) for w in caught if w.category.__name__ != "UnknownWordsWarning"]
    if cache is not None:
        cache[key] = (loaded, notes)
    return loaded, notes


def trained_tasks(run: LoadedRun, data: BabiData) -> set[int]:
    """The tasks a run was trained on: those its checkpoint was validated on (validation stories come from a
    task's training file), so a task whose training file was missing where it trained counts as untrained
    wherever it is evaluated; for a checkpoint without per-task errors, the tasks with training stories here."""
    return set(per_task_errors(run.metrics)) or set(tasks_in(data.train))


def evaluate_run(run_dir: str | Path, eval_config: EvalConfig, data_cache: dict | None = None,
                 progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Load one run's checkpoint, run it over the split, score every question (UserError on trouble)."""
    run_dir = Path(run_dir)
    device = resolve_device(eval_config.device)
    run = load_run(run_dir, tag=eval_config.checkpoint, device=device)
    vocab = run.vocab
    data, notes = load_split(run.data, vocab, eval_config, data_cache)
    dataset = data.test if eval_config.split == "test" else data.valid
    tasks = list(data.tasks)
    if eval_config.tasks is not None:
        tasks = [t for t in tasks if t in eval_config.tasks]
        if not tasks:
            raise DataError(f"{run_dir} was trained on tasks {format_task_spec(data.tasks)}, none of "
                            f"--tasks {format_task_spec(eval_config.tasks)}: pick tasks it knows.")
        dataset = select_tasks(dataset, tasks)
    if len(dataset) == 0:
        raise DataError(f"the {eval_config.split} split of {run_dir}'s data has no stories: check --data-dir.")
    check_vocabulary(dataset, vocab, run_dir, eval_config.split)
    questions = predict(run.model, dataset, vocab, eval_config.batch_size, device, progress)
    label = run_label(run_dir)
    questions.insert(0, "run", label)
    texts = dataset.select_columns(["questions"]).with_format("arrow")[:].column("questions").to_pylist()
    rows, qs = questions["row"].tolist(), questions["q"].tolist()
    questions.insert(4, "question", [texts[r][q] for r, q in zip(rows, qs, strict=True)])
    evaluated = sorted(set(questions["task"].tolist()))
    missing = [t for t in tasks if t not in evaluated]
    if missing:
        notes.append(f"tasks {format_task_spec(missing)} have no {eval_config.split} stories and are left out.")
    trained = trained_tasks(run, data)
    untrained = [t for t in evaluated if t not in trained]
    return RunResult(
        run_dir=run_dir, label=label, model_kind=run.model_config.model, config=run.config,
        model_config=run.model_config, data_config=run.data, checkpoint=run.checkpoint.tag, step=run.step,
        seed=run.train.seed, split=eval_config.split, tasks=evaluated, questions=questions,
        data_source=dict(data.source), device=str(device), notes=notes, untrained=untrained,
        training=data.training_changes(), model=run.model,
        dataset=dataset, vocab=vocab,
    )


def evaluate_runs(paths: Iterable[str | Path], eval_config: EvalConfig,
                  on_error: Callable[[Path, str], None] | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> tuple[list[RunResult], list[tuple]]:
    """Evaluate every run under `paths` (a path with seed-N folders counts as all its seeds).

    A UserError in one run (missing, unloadable, wrong vocabulary, ...) is reported with
    on_error(path, message) and collected; the other runs are still evaluated.
    progress(label, done, total) follows the stories of each run.
    Returns (results, failures) with failures = [(path, message), ...].
    """
    results, failures, cache = [], [], {}
    for path in paths:
        try:
            runs = expand(path)
        except UserError as e:
            failures.append((Path(path), str(e)))
            if on_error:
                on_error(Path(path), str(e))
            continue
        for run_dir in runs:
            label = run_label(run_dir)
            step = (lambda done, total, label=label: progress(label, done, total)) if progress else None
            try:
                results.append(evaluate_run(run_dir, eval_config, cache, step))
            except UserError as e:
                failures.append((run_dir, str(e)))
                if on_error:
                    on_error(run_dir, str(e))
    return results, failures


# --------------------------------------------------------------------------------------------- stories


def story_text(dataset, row: int, question: int | None = None) -> dict:
    """One story of `dataset` as text. With `question`, only the sentences before that question, and its
    supporting facts (0-based sentence indices); else every sentence and question."""
    story = dataset[int(row)]
    sentences, questions = list(story["sentences"]), list(story["questions"])
    after = list(story.get("question_after") or [len(sentences)] * len(questions))
    supporting = list(story.get("supporting") or [[] for _ in questions])
    out = {"task": int(story["task"]), "story_id": int(story["story_id"]), "sentences": sentences,
           "questions": questions, "answers": list(story["answers"]), "question_after": after}
    if question is not None:
        out.update(sentences=sentences[: after[question]], question=questions[question],
                   answer=story["answers"][question], supporting=list(supporting[question]))
    return out
