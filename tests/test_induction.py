"""Task 16's training rewrite (data/induction.py) and the 1k fallback for a missing en-10k training file:
hand-checked stories, a folder written here, and every real en-10k task-16 story where the real files are
found (conftest.REAL_BABI)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from babi_dnc.data import load_babi, parse_babi_file
from babi_dnc.data.induction import colours_told, induction_answer, most_common_colours, rewrite_story, shortcut_share

from .conftest import REAL_BABI, needs_real_babi

STORIES = """\
1 Lily is a frog.
2 Bernhard is a frog.
3 Bernhard is green.
4 Brian is a lion.
5 Brian is white.
6 Julius is a swan.
7 Julius is green.
8 Lily is green.
9 Greg is a swan.
10 What color is Greg?\tgreen\t9 6 7
1 Julius is a lion.
2 Lily is a rhino.
3 Bernhard is a swan.
4 Lily is white.
5 Bernhard is green.
6 Greg is a rhino.
7 Greg is gray.
8 Julius is white.
9 Brian is a lion.
10 What color is Brian?\twhite\t9 1 8
1 Bernhard is a frog.
2 Lily is a frog.
3 Lily is gray.
4 Bernhard is gray.
5 Julius is a lion.
6 Greg is a swan.
7 Julius is yellow.
8 Greg is white.
9 Brian is a swan.
10 What color is Brian?\twhite\t9 6 8
"""


def shortcut_error(stories: list[dict]) -> float:
    """The error of answering a story's most common colour, a tie counted as a share."""
    return 1 - float(np.mean([shortcut_share(s["answers"][0], s["sentences"]) for s in stories]))


def test_the_rule_reads_the_answer_from_the_sentences():
    first, second, _ = parse_babi_file(STORIES.encode())
    assert induction_answer(first) == "green"  # Greg is a swan, Julius (a swan) is green
    assert induction_answer(second) == "white"  # Brian is a lion, Julius (a lion) is white


def test_the_shortcut_is_the_most_common_colour_a_tie_counted_as_a_share():
    first, second, third = parse_babi_file(STORIES.encode())
    assert colours_told(first["sentences"]) == ["green", "white", "green", "green"]
    assert most_common_colours(first["sentences"]) == ["green"] and shortcut_share("green", first["sentences"]) == 1.0
    assert most_common_colours(third["sentences"]) == ["gray"] and shortcut_share("white", third["sentences"]) == 0.0
    assert shortcut_error([first, second, third]) == pytest.approx(1 / 3)  # right on the first two
    tie = ["Lily is green.", "Greg is white.", "Lily is a frog."]
    assert shortcut_share("white", tie) == 0.5 and shortcut_share("gray", tie) == 0.0
    assert shortcut_share("gray", []) == 0.0


def test_the_rewrite_keeps_the_chain_and_the_answer_and_leaves_the_answer_colour_once():
    story = parse_babi_file(STORIES.encode())[0]
    new = rewrite_story(story, np.random.default_rng(0))
    chain = story["supporting"][0]
    assert [new["sentences"][i] for i in chain] == [story["sentences"][i] for i in chain]
    assert new["questions"] == story["questions"] and new["answers"] == story["answers"]
    assert colours_told(story["sentences"]).count("green") == 3 and colours_told(new["sentences"]).count("green") == 1
    assert len(set(colours_told(new["sentences"]))) == len(colours_told(new["sentences"]))  # every colour once
    swans = [s for s in new["sentences"] if s.endswith("is a swan.")]
    assert swans == ["Julius is a swan.", "Greg is a swan."]  # the asked species has one other member
    assert induction_answer(new) == "green"
    # only the species or colour word of a sentence changes, never who it is about
    assert [s.split()[0] for s in new["sentences"]] == [s.split()[0] for s in story["sentences"]]


def test_a_story_of_another_form_comes_back_unchanged():
    story = parse_babi_file(STORIES.encode())[0]
    two_questions = {**story, "questions": story["questions"] * 2, "answers": story["answers"] * 2,
                     "supporting": story["supporting"] * 2, "question_after": story["question_after"] * 2}
    assert rewrite_story(two_questions, np.random.default_rng(0)) is two_questions
    wrong_answer = {**story, "answers": ["white"]}
    assert rewrite_story(wrong_answer, np.random.default_rng(0)) is wrong_answer


def write_folder(root: Path, train: dict[str, str], test: dict[str, str]) -> Path:
    """A tasks_1-20_v1-2 folder with the given files ({"en-10k/qa16_basic-induction_train.txt": text})."""
    folder = root / "tasks_1-20_v1-2"
    for name, text in {**train, **test}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def load_quietly(folder: Path, cache: Path, tasks: str = "16", **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # most tasks are missing on purpose
        return load_babi("en-10k", tasks=tasks, data_dir=folder, valid_fraction=0.2, seed=0, cache_dir=cache,
                         **options)


def test_load_babi_rewrites_task_16_training_stories_only(tmp_path):
    text = STORIES * 4  # 12 stories: 10 train, 2 valid
    folder = write_folder(tmp_path, {"en-10k/qa16_basic-induction_train.txt": text},
                          {"en-10k/qa16_basic-induction_test.txt": text})
    plain = load_quietly(folder, tmp_path / "cache")
    rewritten = load_quietly(folder, tmp_path / "cache", augment_16=True)
    assert rewritten.augment_16 and rewritten.config()["augment_16"] and not plain.config()["augment_16"]
    for split in ("valid", "test"):  # never rewritten
        assert rewritten.splits()[split]["ids"] == plain.splits()[split]["ids"]
    before, after = plain.train, rewritten.train
    assert after["story_id"] == before["story_id"] and after["answer_ids"] == before["answer_ids"]
    assert after["answer_positions"] == before["answer_positions"]
    assert sum(a != b for a, b in zip(after["ids"], before["ids"], strict=True)) == len(before)  # all changed
    for row in after:
        assert colours_told(row["sentences"]).count(row["answers"][0]) == 1
        assert induction_answer(row) == row["answers"][0]
        assert rewritten.vocab.decode(row["ids"]) == row["tokens"]  # ids encode the rewritten sentences
    again = load_quietly(folder, tmp_path / "cache2", augment_16=True)
    assert again.train["ids"] == after["ids"]  # the same data config gives the same stories


def test_a_missing_en_10k_training_file_falls_back_to_the_1k_one_only_when_asked(tmp_path):
    task1 = "1 Mary moved to the bathroom.\n2 Where is Mary?\tbathroom\t1\n"
    files = {"en/qa16_basic-induction_train.txt": STORIES * 5, "en-10k/qa1_single-supporting-fact_train.txt": task1}
    test = {"en-10k/qa16_basic-induction_test.txt": STORIES, "en/qa16_basic-induction_test.txt": STORIES}
    folder = write_folder(tmp_path, files, test)
    without = load_quietly(folder, tmp_path / "cache")
    assert len(without.train) == 0 and without.from_1k == []
    with pytest.warns(UserWarning, match="task 16 is missing, so the en \\(1k\\) one is used"):
        data = load_babi("en-10k", tasks="16", data_dir=folder, valid_fraction=0.2, seed=0,
                         cache_dir=tmp_path / "cache", fallback_1k=True)
    assert data.from_1k == [16] and data.config()["from_1k"] == [16]
    assert len(data.train) + len(data.valid) == 15 and len(data.test) == 3
    assert data.source["sha256"] == without.source["sha256"]  # the source's digest: its en-10k files
    full = write_folder(tmp_path / "full", {"en-10k/qa16_basic-induction_train.txt": STORIES}, test)
    assert load_quietly(full, tmp_path / "cache", fallback_1k=True).from_1k == []  # nothing missing: no fallback


@needs_real_babi
def test_every_real_task_16_story_keeps_its_label_and_loses_the_shortcut():
    stories = parse_babi_file(REAL_BABI / "en-10k" / "qa16_basic-induction_train.txt")
    rng = np.random.default_rng(0)

    shortcut_before = shortcut_error(stories)
    rewritten = [rewrite_story(s, rng) for s in stories]
    assert all(induction_answer(s) == s["answers"][0] for s in stories)  # the rule is the task's
    assert all(induction_answer(n) == s["answers"][0] for n, s in zip(rewritten, stories, strict=True))
    assert all(colours_told(n["sentences"]).count(n["answers"][0]) == 1 for n in rewritten)
    shortcut_after = shortcut_error(rewritten)
    assert 0.5 < shortcut_before < 0.55 and shortcut_after > 0.7  # 53.0% -> 75.0% error on en-10k
