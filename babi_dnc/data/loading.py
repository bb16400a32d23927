"""Loading bAbI: the task files of a source parsed into datasets.Dataset rows (cached), the vocabulary,
the train / valid / test splits.

Stories are `datasets.Dataset` rows, tokenized with `.map` (batched) and cached next to the parsed
stories in `cache_dir` (default: `$BABI_DNC_CACHE`, else `<HF datasets cache>/babi_dnc`), keyed by the
sha256 of the files, so a second `load_babi` takes a fraction of a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets.table import InMemoryTable

from ..errors import DataError
from ..hashing import sha256_bytes
from . import deduction, induction
from .encoding import FORMAT_VERSION, RAW_FEATURES, add_ids, cache_key, encode_story, tokenize_dataset
from .parser import parse_babi_file
from .sources import ARCHIVE_ROOT, resolve_source
from .tasks import SPLITS, TASK_NAMES, check_set, format_task_spec, parse_task_spec, task_file, task_of_file
from .vocab import Vocabulary

log = logging.getLogger(__name__)
ENV_CACHE = "BABI_DNC_CACHE"


class MissingDataWarning(UserWarning):
    """Some task files of the chosen set are absent; the loader works with the ones that are there."""


class UnknownWordsWarning(UserWarning):
    """The data holds words outside the given vocabulary; they get the explicit unknown id."""


def _cache_root(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    return Path(datasets.config.HF_DATASETS_CACHE) / "babi_dnc"


@contextlib.contextmanager
def _quiet_datasets():
    """Hide datasets' progress bars while we build (restored afterwards)."""
    was_disabled = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _raw_dataset(files: dict[str, bytes], names: list[str]) -> datasets.Dataset:
    """Parse the given task files into one Dataset of stories (file order, then story order)."""
    columns: dict[str, list] = {k: [] for k in RAW_FEATURES}
    for name in names:
        task = task_of_file(name)
        for story_id, story in enumerate(parse_babi_file(files[name], name=name)):
            columns["task"].append(task)
            columns["story_id"].append(story_id)
            for k in ("sentences", "questions", "answers", "supporting", "question_after"):
                columns[k].append(story[k])
    table = pa.table(columns, schema=RAW_FEATURES.arrow_schema)  # straight to Arrow: fast
    return datasets.Dataset(InMemoryTable(table), info=datasets.DatasetInfo(features=RAW_FEATURES))


def _cached_raw(files: dict[str, bytes], names: list[str], key: str, root: Path | None) -> datasets.Dataset:
    """The parsed stories, saved once under `root/key` with save_to_disk and memory-mapped afterwards."""
    if root is None or not names:
        return _raw_dataset(files, names)
    target = root / key
    if (target / "state.json").is_file():
        try:
            return datasets.load_from_disk(str(target))
        except Exception as e:  # noqa: BLE001 -- a broken cache entry is rebuilt
            log.warning("rebuilding the bAbI cache entry %s (%s)", target, e)
            shutil.rmtree(target, ignore_errors=True)
    raw = _raw_dataset(files, names)
    tmp = root / f".{key}.{uuid.uuid4().hex}.tmp"
    try:
        root.mkdir(parents=True, exist_ok=True)
        raw.save_to_disk(str(tmp))
        try:
            os.rename(tmp, target)  # atomic: concurrent loaders (e.g. DDP ranks) keep the first one
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        return datasets.load_from_disk(str(target))
    except OSError as e:
        log.warning("bAbI cache %s is not writable (%s): keeping the data in memory", root, e)
        shutil.rmtree(tmp, ignore_errors=True)
        return raw


def build_vocabulary(dataset: datasets.Dataset) -> Vocabulary:
    """Every token and answer word of the (tokenized) stories, plus '-': the paper's vocabulary."""
    words = {Vocabulary.ANSWER}
    for column in ("tokens", "answer_words"):
        words.update(pc.unique(pc.list_flatten(dataset.data.column(column).combine_chunks())).to_pylist())
    return Vocabulary(w for w in words if w)


def select_tasks(dataset: datasets.Dataset, tasks: Iterable[int]) -> datasets.Dataset:
    """The rows of `dataset` whose "task" is one of `tasks`, in their order (`select`: no progress bar)."""
    return dataset.select(np.flatnonzero(np.isin(np.asarray(dataset["task"]), list(tasks))))


def tasks_in(dataset: datasets.Dataset) -> set[int]:
    """The tasks that have rows in `dataset` (not `Dataset.unique`, which flattens a selection with a progress
    bar)."""
    return set(np.unique(np.asarray(dataset["task"])).tolist())


def split_train_valid(tasks: Sequence[int], valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, valid) given the task of every training story, in file order.

    For each task, round(valid_fraction * stories) stories (at least one when the fraction is positive
    and the task has two or more) go to validation, drawn with numpy's generator seeded by (seed, task):
    a task's split does not depend on which other tasks are loaded.
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise DataError(f"valid_fraction must be in [0, 1), not {valid_fraction}.")
    tasks = np.asarray(tasks)
    is_valid = np.zeros(len(tasks), dtype=bool)
    for task in np.unique(tasks):
        rows = np.flatnonzero(tasks == task)
        k = int(round(valid_fraction * len(rows)))
        if valid_fraction > 0 and len(rows) >= 2:
            k = min(max(k, 1), len(rows) - 1)
        pick = np.random.default_rng([int(seed), int(task)]).permutation(len(rows))[:k]
        is_valid[rows[pick]] = True
    return np.flatnonzero(~is_valid), np.flatnonzero(is_valid)


@dataclass
class BabiData:
    """Loaded bAbI: three Datasets (one row per story), the vocabulary, and where it all came from."""

    train: datasets.Dataset
    valid: datasets.Dataset
    test: datasets.Dataset
    vocab: Vocabulary
    source: dict
    missing: list[str]
    set_name: str = "en-10k"
    tasks: list[int] = field(default_factory=lambda: list(TASK_NAMES))
    valid_fraction: float = 0.1
    seed: int = 0
    notes: list[str] = field(default_factory=list)
    from_1k: list[int] = field(default_factory=list)  # tasks whose training stories come from the en (1k) file
    augment_15: bool = False  # task 15's training stories rewritten (data/deduction.py)
    augment_16: bool = False  # task 16's training stories rewritten (data/induction.py)
    unknown: dict[str, list[str]] = field(default_factory=dict)  # split -> words of its files outside vocab

    def splits(self) -> dict[str, datasets.Dataset]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def training_changes(self) -> list[str]:
        """How the training stories differ from the set's own files, in a few words each (empty: they do not);
        reports and results files show them beside the run."""
        changes = [f"task {t} rewritten" for t, on in ((15, self.augment_15), (16, self.augment_16)) if on]
        if self.from_1k:
            changes.append(f"task {format_task_spec(self.from_1k)} from en (1k)")
        return changes

    def config(self) -> dict:
        """What `load_babi` needs to rebuild this data (for RUN/config.json)."""
        return {"set_name": self.set_name, "tasks": list(self.tasks), "valid_fraction": self.valid_fraction,
                "seed": self.seed, "source": dict(self.source), "from_1k": list(self.from_1k),
                "augment_15": self.augment_15, "augment_16": self.augment_16}


def load_babi(set_name: str = "en-10k", tasks: str | int | Iterable[int] = "all",
              data_dir: str | Path | None = None, valid_fraction: float = 0.1, seed: int = 0,
              vocab: Vocabulary | None = None, *, cache_dir: str | Path | None = None, fallback_1k: bool = False,
              augment_15: bool = False, augment_16: bool = False) -> BabiData:
    """Load bAbI `set_name` ("en-10k" or "en"), tasks `tasks` ("all", "1,2,5-7", or ints).

    Returns BabiData with train/valid/test Datasets, one row per story, columns
      task, story_id (index within its task file), sentences, questions, answers, supporting,
      question_after (see parse_babi_file), tokens, ids, length, answer_positions (token index of
      every '-'), answer_ids, answer_question (question index of every '-'), answer_words.
    valid = `valid_fraction` of each task's training stories (seeded by `seed`, see split_train_valid);
    the test files are never used for training or choices. The vocabulary comes from the training
    files of all 20 tasks of the set (train and valid rows, whatever `tasks` says), unless `vocab` is
    given (e.g. the one saved with a checkpoint); words outside it get `vocab.unk_id`.
    Missing task files are listed in `.missing` and warned about (MissingDataWarning); a task whose
    training file is missing keeps its test rows. Raises DataError when nothing requested is there.
    `cache_dir`: where parsed and tokenized stories are cached (None: $BABI_DNC_CACHE, else the
    datasets cache; False: no cache, all in memory).
    `fallback_1k`: where an en-10k training file is missing, train on the en (1k) one of the same task (its
    first 1,000 questions; the tasks are listed in `.from_1k` and in a note). `augment_15`, `augment_16`: rewrite
    task 15's (deduction.py), task 16's (induction.py) training stories, never their validation or test stories,
    so that the task's most-common-answer shortcut no longer pays.
    """
    check_set(set_name)
    tasks = parse_task_spec(tasks)
    split_train_valid([], valid_fraction, seed)  # validates the fraction before any work
    source = resolve_source(data_dir)
    files = source.read_set(set_name)
    from_1k = _borrow_1k_training(source, files) if fallback_1k and set_name == "en-10k" else []
    expected = {split: [task_file(set_name, t, split) for t in TASK_NAMES] for split in SPLITS}
    missing = [n for split in SPLITS for n in expected[split] if n not in files]
    requested = [task_file(set_name, t, s) for t in tasks for s in SPLITS]
    if not any(n in files for n in requested):
        raise DataError(f"none of the requested bAbI files ({set_name}, tasks {format_task_spec(tasks)}) is in "
                        f"{source.path}, so point --data-dir at a complete {ARCHIVE_ROOT} folder or archive.")
    empty = [n for n in requested if n in files and not files[n].removeprefix(b"\xef\xbb\xbf").strip()]
    if empty:
        raise DataError(f"{empty[0]} in {source.path} is empty (no stories), so re-download it or leave task "
                        f"{task_of_file(empty[0])} out of --tasks.")
    notes = _missing_notes(set_name, tasks, missing, own_vocab=vocab is None)
    if from_1k:
        notes.append(f"The en-10k training file of task {format_task_spec(from_1k)} is missing, so the en (1k) one "
                     "is used instead (1,000 questions, not 10,000).")
    if notes:
        warnings.warn(" ".join(notes), MissingDataWarning, stacklevel=2)

    root = None if cache_dir is False else _cache_root(cache_dir)
    with _quiet_datasets():
        tokenized, keys = {}, {}
        for split in SPLITS:
            names = [n for n in expected[split] if n in files]
            key = cache_key(set_name, split, FORMAT_VERSION, *(f"{n}={sha256_bytes(files[n])}" for n in names))
            tokenized[split] = tokenize_dataset(_cached_raw(files, names, f"{set_name}-{split}-{key}", root), key)
            keys[split] = key
        if vocab is None:
            if len(tokenized["train"]) == 0:
                raise DataError(f"no {set_name} training file is present, so the vocabulary cannot be "
                                "built: pass a complete data folder or the vocabulary of a trained run.")
            vocab = build_vocabulary(tokenized["train"])
        encoded = {split: add_ids(tokenized[split], vocab, keys[split]) for split in SPLITS}

    train_tasks = np.asarray(encoded["train"].data.column("task").to_numpy())
    train_rows, valid_rows = split_train_valid(train_tasks, valid_fraction, seed)
    wanted = np.isin(train_tasks, tasks)
    test_tasks = np.asarray(encoded["test"].data.column("task").to_numpy())
    train = encoded["train"].select(train_rows[wanted[train_rows]])
    data = BabiData(
        train=rewrite_training(train, vocab, seed, augment_15, augment_16),
        valid=encoded["train"].select(valid_rows[wanted[valid_rows]]),
        test=encoded["test"].select(np.flatnonzero(np.isin(test_tasks, tasks))),
        vocab=vocab, source=source.describe(), missing=missing, set_name=set_name, tasks=tasks,
        valid_fraction=valid_fraction, seed=seed, notes=notes, from_1k=from_1k, augment_15=augment_15,
        augment_16=augment_16)
    for split in SPLITS:
        unknown = data.unknown[split] = _unknown_words(encoded[split], vocab.unk_id)
        if unknown:
            shown = ", ".join(unknown[:20]) + (" ..." if len(unknown) > 20 else "")
            warnings.warn(f"{len(unknown)} words of the {set_name} {split} files are outside the vocabulary "
                          f"and map to the unknown id {vocab.unk_id}: {shown}", UnknownWordsWarning,
                          stacklevel=2)
    return data


def _borrow_1k_training(source, files: dict[str, bytes]) -> list[int]:
    """Put the en (1k) training file of every task whose en-10k one is missing into `files` under the en-10k
    name (the en files are the first 1,000 questions of the en-10k ones); returns those tasks."""
    missing = [t for t in TASK_NAMES if task_file("en-10k", t, "train") not in files]
    if not missing:
        return []
    sha256 = source.sha256
    small = source.read_set("en")
    source.sha256 = sha256  # the source's digest stays that of the en-10k files; the borrowed ones are keyed below
    borrowed = [t for t in missing if task_file("en", t, "train") in small]
    for t in borrowed:
        files[task_file("en-10k", t, "train")] = small[task_file("en", t, "train")]
    return borrowed


def rewrite_training(train: datasets.Dataset, vocab: Vocabulary, seed: int, augment_15: bool,
                     augment_16: bool) -> datasets.Dataset:
    """`train` with the training rewrites asked for: task 15's (deduction.rewrite_story) and task 16's
    (induction.rewrite_story), each drawing only words of `vocab`."""
    def within(words):
        return tuple(w for w in words if w in vocab.index)

    if augment_15:
        animals = within(deduction.PLURALS)
        train = rewrite_task(train, vocab, seed, deduction.TASK,
                             lambda s, rng: deduction.rewrite_story(s, rng, animals))
    if augment_16:
        species, colours = within(induction.SPECIES), within(induction.COLOURS)
        train = rewrite_task(train, vocab, seed, induction.TASK,
                             lambda s, rng: induction.rewrite_story(s, rng, species, colours))
    return train


def rewrite_task(train: datasets.Dataset, vocab: Vocabulary, seed: int, task: int,
                 rewrite: Callable[[dict, np.random.Generator], dict]) -> datasets.Dataset:
    """`train` with its stories of `task` rewritten by `rewrite(story, rng)` and encoded again (same rows, same
    order; a generator seeded by (seed, task), so the same data config gives the same stories)."""
    rows = np.flatnonzero(np.asarray(train["task"]) == task)
    if len(rows) == 0:
        return train
    rng = np.random.default_rng([int(seed), task])
    new_rows = []
    for row in train.select(rows):
        story = rewrite(row, rng)
        new_rows.append({**story, **encode_story(story, vocab)})
    rewritten = datasets.Dataset.from_list(new_rows, features=train.features)
    others = np.setdiff1d(np.arange(len(train)), rows)
    joined = datasets.concatenate_datasets([train.select(others), rewritten])
    return joined.select(np.argsort(np.concatenate([others, rows]), kind="stable"))


def _missing_notes(set_name: str, tasks: list[int], missing: list[str], own_vocab: bool = True) -> list[str]:
    """What the missing files mean for this load, one sentence each (few, however many files)."""
    task_of = task_of_file
    train = [n for n in missing if n.endswith("_train.txt") and task_of(n) in tasks]
    test = [n for n in missing if n.endswith("_test.txt") and task_of(n) in tasks]
    others = [n for n in missing if n.endswith("_train.txt") and task_of(n) not in tasks]
    notes = []
    if train:
        notes.append(f"{', '.join(train)} {'is' if len(train) == 1 else 'are'} missing: task"
                     f"{'s' if len(train) > 1 else ''} {format_task_spec(map(task_of, train))} "
                     "will have no training or validation stories (test stories are kept).")
    if test:
        notes.append(f"{', '.join(test)} {'is' if len(test) == 1 else 'are'} missing: task"
                     f"{'s' if len(test) > 1 else ''} {format_task_spec(map(task_of, test))} "
                     "will have no test stories.")
    if own_vocab and (train or others):
        tasks_text = format_task_spec(map(task_of, others))
        files = f"training file of task {tasks_text}" if len(others) == 1 else f"training files of tasks {tasks_text}"
        extra = f" (also missing: the {files}, not requested)" if others else ""
        notes.append(f"The vocabulary comes from the {set_name} training files that are present{extra}.")
    return notes


def _unknown_words(ds: datasets.Dataset, unk_id: int) -> list[str]:
    """Distinct tokens and answer words of a (whole, unselected) encoded dataset outside the vocabulary."""
    words: set[str] = set()
    for word_column, id_column in (("tokens", "ids"), ("answer_words", "answer_ids")):
        ids = pc.list_flatten(ds.data.column(id_column).combine_chunks())
        unknown = pc.equal(ids, unk_id)
        if pc.any(unknown).as_py():
            flat = pc.list_flatten(ds.data.column(word_column).combine_chunks())
            words.update(pc.unique(pc.filter(flat, unknown)).to_pylist())
    return sorted(words)
