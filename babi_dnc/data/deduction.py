"""Task 15 (basic deduction) without its shortcut: a rewrite of its training stories.

A task-15 story says what each of four species is afraid of and which species four people are, then asks
what some of them are afraid of ("Mice are afraid of wolves. Gertrude is a mouse. What is gertrude afraid
of? wolf"). The answer is the feared animal of the asked one's species: a chain of two facts. In the
original stories two or three species often fear the same animal, so answering the story's most feared
animal is right about half the time (48.7% error on en-10k training stories, ties broken at random): the
level near which DNCs stop on this task (DNC 27.2%, DNC-MD 23.6%, ours about 40%).

The rewrite changes only the fear facts of species that none of the story's questions asks about (they are
on no question's chain): each such fact's feared animal is redrawn, among the animals other than the
species itself, from those that bring an animal level with the most feared one where there are such (a
tie), else from the least feared. The asked answers are then, as far as the chains allow, no more common
than the others (34% right for the shortcut, about chance among three). Questions, answers and chains
are unchanged.

Only training stories are rewritten (load_babi, DataConfig.augment_15); validation and test stories never.

    story = rewrite_story(story, np.random.default_rng(0))   # a parsed story dict (parse_babi_file)
"""

from __future__ import annotations

import collections
import re

import numpy as np

from .shortcuts import most_frequent, tie_share

TASK = 15
PLURALS = {"mice": "mouse", "wolves": "wolf", "sheep": "sheep", "cats": "cat"}  # species as facts and answers
# (singular, plural) of the species whose two forms differ: what entity permutation renames (augment.py)
SPECIES_FORMS = tuple((one, many) for many, one in PLURALS.items() if one != many)
_FEAR = re.compile(r"^(\w+) are afraid of (\w+)\.$")
_IS_A = re.compile(r"^(\w+) is an? (\w+)\.$")
_QUESTION = re.compile(r"^What is (\w+) afraid of\?$")


def _animal(word: str) -> str:
    """A species word as the answers spell it (singular, lower case)."""
    word = word.lower()
    return PLURALS.get(word, word)


def _facts(sentences: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """({species: the animal it fears}, {person: species}) of `sentences`, singular and lower case."""
    fears, species = {}, {}
    for sentence in sentences:
        if m := _FEAR.match(sentence):
            fears[_animal(m[1])] = _animal(m[2])
        elif m := _IS_A.match(sentence):
            species[m[1].lower()] = _animal(m[2])
    return fears, species


def deduction_answer(story: dict, question: int) -> str | None:
    """The answer to `question` by the task's rule, read from the sentences before it: the animal that the
    asked one's species fears (None when the rule gives none). The tests check it against every label."""
    asked = _QUESTION.match(story["questions"][question])
    if asked is None:
        return None
    fears, species = _facts(story["sentences"][: story["question_after"][question]])
    return fears.get(species.get(asked[1].lower(), ""))


def most_feared(sentences: list[str]) -> list[str]:
    """The animals feared by the most species in `sentences` (several on a tie): the shortcut's answers."""
    return most_frequent([_animal(m[2]) for s in sentences if (m := _FEAR.match(s))])


def shortcut_share(answer: str, sentences: list[str]) -> float:
    """How often the shortcut (a most feared animal, a tie broken at random) gives `answer`: 1/k if it is one
    of the k most feared animals of `sentences`, else 0."""
    return tie_share(answer, most_feared(sentences))


def rewrite_story(story: dict, rng: np.random.Generator, animals: tuple[str, ...] = tuple(PLURALS)) -> dict:
    """The story with the fear facts that are on no question's chain redrawn (see the module docstring),
    among `animals` (plural forms, the words a vocabulary has); a story of another form comes back unchanged."""
    _, species = _facts(story["sentences"])
    asked = [_QUESTION.match(q) for q in story["questions"]]
    if not asked or any(m is None or m[1].lower() not in species for m in asked):
        return story
    on_chain = {species[m[1].lower()] for m in asked}
    facts = [(i, m) for i, s in enumerate(story["sentences"]) if (m := _FEAR.match(s))]
    feared = collections.Counter(_animal(m[2]) for _, m in facts if _animal(m[1]) in on_chain)
    sentences = list(story["sentences"])
    for i, m in facts:
        if _animal(m[1]) in on_chain:
            continue
        choices = [a for a in animals if _animal(a) != _animal(m[1])]
        if not choices:
            return story
        top = max(feared.values(), default=0)
        level = [a for a in choices if feared[_animal(a)] + 1 == top]
        least = min(feared[_animal(a)] for a in choices)
        new = str(rng.choice(level or [a for a in choices if feared[_animal(a)] == least]))
        feared[_animal(new)] += 1
        sentences[i] = sentences[i][: m.start(2)] + new + sentences[i][m.end(2):]
    return {**story, "sentences": sentences}


__all__ = ["TASK", "PLURALS", "SPECIES_FORMS", "deduction_answer", "most_feared", "shortcut_share",
           "rewrite_story"]
