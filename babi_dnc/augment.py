"""Entity permutation: a label-preserving augmentation of bAbI training stories (not in the paper).

A bAbI story does not depend on which names or places it uses: "Mary moved to the bathroom. Where is
Mary? bathroom" stays true when Mary becomes Sandra and the bathroom the garden in the whole story and
its answers. With only 1,800 training stories per task, a network can memorise the stories (README.md
has the measurement on task 1). Renaming the entities of every training story at random, consistently
within the story, removes that shortcut: the only way to answer is to read the story.

Which words are interchangeable is found in the training data of each task, never in its test data:

    names     words written with a capital letter inside a sentence or question (not as its first
              word) in any task, e.g. "Where is Mary?": people's and animals' names.
    answers   the answer words of a task whose every answer word already occurs in its story before the
              question (places in task 1, objects and places in task 2, colours in task 16; not yes/no,
              counts, directions or motivations), minus the names.
    species   task 15's animals with their plurals, renamed together (mouse/mice, wolf/wolves, cat/cats;
              sheep, the same word for one and many, stays): its people are the same four in every story
              and its answers are singular where its facts are plural, so the two rules above leave its
              2,000 stories as they are, to be learned by heart (data/deduction.py).

Each class is permuted separately, per story, with the task's own words. Pronouns are not changed, so in
the coreference tasks (11, 13) a renamed story can read "Mary ... he": the answer still follows from the
story's structure, but such a story never occurs in the test data. Validation and test stories are
never changed. `BabiTaskConfig.augment` (babi_task.py) turns it on (the `small` preset does; the `paper`
preset does not).

    classes = entity_classes(data.train)                   # {task: [LongTensor of word ids, ...]}
    batch = permute_entities(batch, classes, vocab_size, generator)
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from .data import IGNORE_INDEX, tokenize
from .data.deduction import SPECIES_FORMS
from .data.deduction import TASK as DEDUCTION_TASK


def _names(texts: list[str]) -> set[str]:
    """Lower-cased words written with a capital letter after the first word of a sentence."""
    names = set()
    for text in texts:
        for word in text.split()[1:]:
            word = word.strip(".,?!")
            if word[:1].isupper():
                names.update(tokenize(word))
    return names


# dataset -> {vocabulary fingerprint -> classes}; an entry goes with its dataset
_CLASSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def entity_classes(dataset, vocab) -> dict[int, list[Tensor]]:
    """Per task of `dataset` (parsed and tokenized rows with task, sentences, questions, tokens,
    answer_positions, answer_words), the classes of interchangeable words as LongTensors of vocabulary
    ids (each with at least two words). See the module docstring for the rules. Computed once per
    dataset and vocabulary in a process (a few seconds on all of en-10k), so `--seeds K` pays it once."""
    per_vocab = _CLASSES.setdefault(dataset, {})
    key = vocab.fingerprint()
    if key not in per_vocab:
        per_vocab[key] = _entity_classes(dataset, vocab)
    return per_vocab[key]


def _entity_classes(dataset, vocab) -> dict[int, list[Tensor]]:
    all_names: set[str] = set()
    words: dict[int, set[str]] = {}
    answers: dict[int, set[str]] = {}
    extractive: dict[int, bool] = {}
    columns = ("task", "sentences", "questions", "tokens", "answer_positions", "answer_words")
    for row in dataset.select_columns(list(columns)):
        task = int(row["task"])
        all_names.update(_names(row["sentences"] + row["questions"]))
        tokens = row["tokens"]
        words.setdefault(task, set()).update(tokens)
        answers.setdefault(task, set()).update(row["answer_words"])
        found = all(word in tokens[:pos] for pos, word in zip(row["answer_positions"], row["answer_words"]))
        extractive[task] = extractive.get(task, True) and found
    classes: dict[int, list[Tensor]] = {}
    for task in sorted(words):
        names = all_names & words[task]  # a name in any task is a name wherever it occurs
        groups = [names, answers[task] - names if extractive[task] else set()]
        ids = [sorted(vocab.encode(sorted(g))) for g in groups]
        classes[task] = [torch.tensor(c, dtype=torch.long) for c in ids if len(c) >= 2 and vocab.unk_id not in c]
    if DEDUCTION_TASK in classes and all(w in vocab.index for forms in SPECIES_FORMS for w in forms):
        forms = torch.tensor([vocab.encode(list(f)) for f in zip(*SPECIES_FORMS, strict=True)])  # [2, m]
        classes[DEDUCTION_TASK].append(forms)
    return classes


def permutation_tables(tasks: Tensor, classes: dict[int, list[Tensor]], num_ids: int,
                       generator: torch.Generator) -> Tensor:
    """One random word-id mapping per story: tasks [B] -> tables [B, num_ids] (identity outside the
    classes of the story's task; within each class, a uniformly random permutation). A class is [m] word
    ids, or [k, m]: k forms of m words (singular and plural), each form permuted by the same order."""
    B = tasks.shape[0]
    tables = torch.arange(num_ids).repeat(B, 1)  # [B, num_ids]
    for task, groups in classes.items():
        rows = torch.nonzero(tasks == task).squeeze(1)  # [B_k]
        if rows.numel() == 0:
            continue
        for words in groups:  # [m] or [k, m]
            forms = words.reshape(-1, words.shape[-1])  # [k, m]
            order = torch.rand(rows.numel(), forms.shape[1], generator=generator).argsort(dim=1)  # [B_k, m]
            tables[rows[:, None, None], forms[None]] = forms[:, order].transpose(0, 1)  # [B_k, k, m]
    return tables


def permute_entities(batch: dict[str, Tensor], classes: dict[int, list[Tensor]], num_ids: int,
                     generator: torch.Generator) -> dict[str, Tensor]:
    """The batch with the entities of every story renamed (ids and targets; see the module docstring).

    batch: ids [B, T], targets [B, T] (IGNORE_INDEX where there is no answer), task [B]. num_ids: the
    number of input ids (vocabulary size + 1 for the unknown word)."""
    tables = permutation_tables(batch["task"], classes, num_ids, generator)  # [B, num_ids]
    targets = batch["targets"]
    answer = targets != IGNORE_INDEX
    new_targets = torch.where(answer, tables.gather(1, targets.clamp(min=0)), targets)
    return {**batch, "ids": tables.gather(1, batch["ids"]), "targets": new_targets}


def describe(classes: dict[int, list[Tensor]], vocab) -> dict[int, list[list[str]]]:
    """The classes as words, for logs and tests."""
    return {task: [vocab.decode(c.tolist()) if c.dim() == 1 else [vocab.decode(f) for f in c.tolist()] for c in groups]
            for task, groups in classes.items()}


__all__ = ["entity_classes", "permutation_tables", "permute_entities", "describe"]
