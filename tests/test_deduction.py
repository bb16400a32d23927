"""Task 15's training rewrite (data/deduction.py): hand-checked stories, load_babi on a folder written here,
and every real en-10k task-15 story where the real files are found (conftest.REAL_BABI)."""

from __future__ import annotations

import numpy as np

from babi_dnc.data import parse_babi_file
from babi_dnc.data.deduction import deduction_answer, most_feared, rewrite_story, shortcut_share

from .conftest import REAL_BABI, needs_real_babi
from .test_induction import load_quietly, write_folder

# the first two stories of en-10k's training file; in the first, two species fear wolves and the answers
# are wolf, wolf, cat, wolf: "the most feared animal" answers three of four
STORIES = """\
1 Mice are afraid of wolves.
2 Gertrude is a mouse.
3 Cats are afraid of sheep.
4 Winona is a mouse.
5 Sheep are afraid of wolves.
6 Wolves are afraid of cats.
7 Emily is a mouse.
8 Jessica is a wolf.
9 What is gertrude afraid of?\twolf\t2 1
10 What is gertrude afraid of?\twolf\t2 1
11 What is jessica afraid of?\tcat\t8 6
12 What is gertrude afraid of?\twolf\t2 1
1 Sheep are afraid of mice.
2 Emily is a sheep.
3 Mice are afraid of sheep.
4 Cats are afraid of sheep.
5 Winona is a sheep.
6 Jessica is a mouse.
7 Gertrude is a sheep.
8 Wolves are afraid of sheep.
9 What is jessica afraid of?\tsheep\t6 3
10 What is emily afraid of?\tmouse\t2 1
11 What is winona afraid of?\tmouse\t5 1
12 What is emily afraid of?\tmouse\t2 1
"""


def shortcut_accuracy(story: dict) -> float:
    """How often answering the most feared animal is right, a tie broken at random (expected value)."""
    return float(np.mean([shortcut_share(a, story["sentences"]) for a in story["answers"]]))


def test_the_rule_reads_every_answer_from_the_sentences():
    for story in parse_babi_file(STORIES.encode()):
        assert [deduction_answer(story, q) for q in range(4)] == story["answers"]
    first = parse_babi_file(STORIES.encode())[0]
    assert most_feared(first["sentences"]) == ["wolf"] and shortcut_accuracy(first) == 0.75
    tie = ["Mice are afraid of wolves.", "Cats are afraid of sheep."]
    assert shortcut_share("wolf", tie) == 0.5 and shortcut_share("cat", tie) == 0.0 and shortcut_share("cat", []) == 0.0


def test_the_rewrite_changes_only_facts_off_every_chain_and_keeps_the_answers():
    first, second = parse_babi_file(STORIES.encode())
    new = rewrite_story(first, np.random.default_rng(0))
    # asked: gertrude (a mouse) and jessica (a wolf); the cats' and the sheep's fears are on no chain
    changed = [i for i, (a, b) in enumerate(zip(first["sentences"], new["sentences"], strict=True)) if a != b]
    assert changed == [4]  # "Sheep are afraid of wolves." was the second wolf; the cats' sheep stays
    assert new["sentences"][4] in ("Sheep are afraid of cats.", "Sheep are afraid of mice.")
    assert [deduction_answer(new, q) for q in range(4)] == first["answers"]
    assert new["questions"] == first["questions"] and new["supporting"] == first["supporting"]
    assert shortcut_accuracy(new) < shortcut_accuracy(first)
    # the second story: mice and sheep are asked; the cats' and wolves' fears (both sheep) are redrawn, never
    # to the species itself
    again = rewrite_story(second, np.random.default_rng(1))
    assert [deduction_answer(again, q) for q in range(4)] == second["answers"]
    assert not any(s in again["sentences"] for s in ("Cats are afraid of cats.", "Wolves are afraid of wolves."))


def test_a_story_of_another_form_comes_back_unchanged():
    story = parse_babi_file(STORIES.encode())[0]
    other = {**story, "questions": ["Where is gertrude?"] + story["questions"][1:]}
    assert rewrite_story(other, np.random.default_rng(0)) is other
    stranger = {**story, "questions": ["What is bill afraid of?"] + story["questions"][1:]}  # bill is no one here
    assert rewrite_story(stranger, np.random.default_rng(0)) is stranger


def test_load_babi_rewrites_task_15_training_stories_only(tmp_path):
    text = STORIES * 5  # 10 stories: 8 train, 2 valid
    name = "en-10k/qa15_basic-deduction_{}.txt"
    folder = write_folder(tmp_path, {name.format("train"): text}, {name.format("test"): text})
    plain = load_quietly(folder, tmp_path / "cache", tasks="15")
    rewritten = load_quietly(folder, tmp_path / "cache", tasks="15", augment_15=True)
    assert rewritten.training_changes() == ["task 15 rewritten"] and plain.training_changes() == []
    assert rewritten.config()["augment_15"] and not plain.config()["augment_15"]
    for split in ("valid", "test"):  # never rewritten
        assert rewritten.splits()[split]["ids"] == plain.splits()[split]["ids"]
    before, after = plain.train, rewritten.train
    assert after["answer_ids"] == before["answer_ids"] and after["answer_positions"] == before["answer_positions"]
    assert any(a != b for a, b in zip(after["ids"], before["ids"], strict=True))
    for row in after:
        assert [deduction_answer(row, q) for q in range(4)] == row["answers"]
        assert rewritten.vocab.decode(row["ids"]) == row["tokens"]  # ids encode the rewritten sentences
    both = load_quietly(folder, tmp_path / "cache", tasks="15", augment_15=True, augment_16=True)
    assert both.train["ids"] == after["ids"] and both.training_changes() == ["task 15 rewritten", "task 16 rewritten"]


@needs_real_babi
def test_every_real_task_15_story_keeps_its_labels_and_loses_the_shortcut():
    stories = parse_babi_file(REAL_BABI / "en-10k" / "qa15_basic-deduction_train.txt")
    rng = np.random.default_rng(0)
    rewritten = [rewrite_story(s, rng) for s in stories]
    for old, new in zip(stories, rewritten, strict=True):
        assert [deduction_answer(old, q) for q in range(len(old["questions"]))] == old["answers"]  # the task's rule
        assert [deduction_answer(new, q) for q in range(len(new["questions"]))] == old["answers"]
    before = np.mean([shortcut_accuracy(s) for s in stories])
    after = np.mean([shortcut_accuracy(s) for s in rewritten])
    assert 0.49 < before < 0.53 and 0.32 < after < 0.36  # 51.3% -> 34.3% right on en-10k


def test_entity_permutation_renames_task_15_species_with_their_plurals(tmp_path):
    """Task 15 has no names or extractive answers to permute; its species are renamed in both forms at once
    (sheep, one word for both, stays), so every permuted story still answers by the task's rule."""
    import torch

    from babi_dnc.augment import describe, entity_classes, permute_entities
    from babi_dnc.data import IGNORE_INDEX

    name = "en-10k/qa15_basic-deduction_{}.txt"
    folder = write_folder(tmp_path, {name.format("train"): STORIES * 5}, {name.format("test"): STORIES})
    data = load_quietly(folder, tmp_path / "cache", tasks="15")
    vocab = data.vocab
    assert describe(entity_classes(data.train, vocab), vocab)[15] == [[["mouse", "wolf", "cat"],
                                                                      ["mice", "wolves", "cats"]]]
    row = data.train[0]
    ids = torch.tensor([row["ids"]])  # [1, T]
    targets = torch.full_like(ids, IGNORE_INDEX)
    targets[0, row["answer_positions"]] = torch.tensor(row["answer_ids"])
    batch = {"ids": ids, "targets": targets, "task": torch.tensor([15])}
    generator, seen = torch.Generator().manual_seed(0), set()
    for _ in range(30):
        out = permute_entities(batch, entity_classes(data.train, vocab), vocab.size + 1, generator)
        words = vocab.decode(out["ids"][0].tolist())
        text = " ".join(words).replace(" .", ".").replace(" ?", "?").split(". ")
        story = {"sentences": [s.capitalize() + "." for s in text[:8]], "question_after": [8] * 4,
                 "questions": [f"What is {w} afraid of?" for w in [row["questions"][q].split()[2] for q in range(4)]]}
        answers = vocab.decode(out["targets"][0, row["answer_positions"]].tolist())
        assert [deduction_answer(story, q) for q in range(4)] == answers
        assert ("sheep" in words) == ("sheep" in vocab.decode(row["ids"]))
        seen.add(tuple(answers))
    assert len(seen) > 3  # the answers change with the species
