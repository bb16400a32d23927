"""Tests of the entity-permutation augmentation (babi_dnc.augment) and its use in BabiTask."""

import torch

from babi_dnc.augment import describe, entity_classes, permutation_tables, permute_entities
from babi_dnc.babi_task import BabiTask
from babi_dnc.data import IGNORE_INDEX, Vocabulary

WORDS = ["-", ".", "?", "bathroom", "garden", "is", "john", "mary", "moved", "the", "to", "where"]


def test_classes_are_names_and_the_answers_of_extractive_tasks(tiny_data):
    classes = describe(entity_classes(tiny_data.train, tiny_data.vocab), tiny_data.vocab)
    names = {"daniel", "john", "mary", "sandra"}
    task1_names, task1_places = (set(c) for c in classes[1])
    assert task1_names == names  # "Where is Mary?": capitalised inside a question
    assert task1_places <= {"bathroom", "hallway", "garden", "office", "kitchen", "bedroom"}
    assert len(task1_places) >= 5
    # task 8 answers ("apple,football") are objects picked up earlier in the story: extractive
    assert [set(c) for c in classes[8]][1] == {"apple", "football", "milk"}
    assert all(set(c) & {"the", "where", "is", "-", "?", "."} == set() for t in classes for c in classes[t])


def test_classes_are_computed_once_per_dataset_and_vocabulary(tiny_data):
    first = entity_classes(tiny_data.train, tiny_data.vocab)
    assert entity_classes(tiny_data.train, tiny_data.vocab) is first  # cached, not recomputed
    other = Vocabulary([*tiny_data.vocab.words[: tiny_data.vocab.size], "zebra"])
    assert entity_classes(tiny_data.train, other) is not first  # another vocabulary: its own ids


def test_a_permutation_renames_consistently_within_a_story_and_nowhere_else():
    vocab = Vocabulary(WORDS)
    ids_of = {w: i for i, w in enumerate(vocab.words)}
    story = "mary moved to the bathroom . john moved to the garden . where is mary ? -".split()
    ids = torch.tensor([vocab.encode(story)])  # [1, T]
    targets = torch.full_like(ids, IGNORE_INDEX)
    targets[0, -1] = ids_of["bathroom"]
    names, places = ["john", "mary"], ["bathroom", "garden"]
    classes = {1: [torch.tensor([ids_of[w] for w in names]), torch.tensor([ids_of[w] for w in places])]}
    batch = {"ids": ids, "targets": targets, "task": torch.tensor([1])}
    seen = set()
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        out = permute_entities(batch, classes, vocab.size + 1, generator)
        words = vocab.decode(out["ids"][0].tolist())
        answer = vocab.decode([int(out["targets"][0, -1])])[0]
        assert words[0] == words[14] and words[6] != words[0]  # the same person asked about, renamed alike
        assert answer == words[4] and words[10] != words[4]  # the answer follows its place
        assert [w for i, w in enumerate(words) if i not in (0, 4, 6, 10, 14)] == [
            w for i, w in enumerate(story) if i not in (0, 4, 6, 10, 14)]
        assert (out["targets"][0, :-1] == IGNORE_INDEX).all()
        seen.add((words[0], words[4]))
    assert seen == {("mary", "bathroom"), ("mary", "garden"), ("john", "bathroom"), ("john", "garden")}


def test_tables_are_identity_for_other_tasks_and_permutations_within_classes():
    classes = {1: [torch.tensor([2, 5, 7])], 8: [torch.tensor([1, 3])]}
    tasks = torch.tensor([1, 8, 2, 1])
    tables = permutation_tables(tasks, classes, 10, torch.Generator().manual_seed(1))  # [4, 10]
    identity = torch.arange(10)
    assert torch.equal(tables[2], identity)  # task 2 has no classes
    for row, task in enumerate(tasks.tolist()):
        if task in classes:
            words = classes[task][0]
            assert sorted(tables[row, words].tolist()) == words.tolist()
            others = torch.ones(10, dtype=torch.bool)
            others[words] = False
            assert torch.equal(tables[row, others], identity[others])


def test_augmented_batches_keep_answers_in_the_story_and_resume_exactly(tiny_data):
    plain = BabiTask(tiny_data, batch_size=5, seed=3)
    a, b = (BabiTask(tiny_data, batch_size=5, seed=3, augment=True) for _ in range(2))
    changed = 0
    for step in range(12):
        x, y, p = a.next_batch(step), b.next_batch(step), plain.next_batch(step)
        assert all(torch.equal(x[k], y[k]) for k in x)  # deterministic
        assert torch.equal(x["mask"], p["mask"])
        assert torch.equal(x["targets"] != IGNORE_INDEX, p["targets"] != IGNORE_INDEX)
        changed += int(not torch.equal(x["ids"], p["ids"]))
        for row, t in torch.nonzero(x["targets"] != IGNORE_INDEX).tolist():
            assert int(x["targets"][row, t]) in x["ids"][row, :t].tolist()  # every answer is still in its story
    assert changed >= 10
    c = BabiTask(tiny_data, batch_size=5, seed=3, augment=True)
    c.load_state_dict(a.state_dict())
    x, y = a.next_batch(12), c.next_batch(12)
    assert all(torch.equal(x[k], y[k]) for k in x)
