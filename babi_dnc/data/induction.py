"""Task 16 (basic induction) without its shortcut: a rewrite of its training stories (Franke et al. 2018).

A task-16 story names five animals, their species and the colours of four, and asks the colour of the one
whose colour is not given ("Greg is a swan. ... What color is Greg?"). The answer is the colour of the other
member of Greg's species that the supporting facts name (the chain: "Greg is a swan", "Julius is a swan",
"Julius is green"). In the original stories the answer colour often occurs more than once, so answering
the story's most common colour is right about half the time (52% error): a shortcut every DNC-family model
stops at. The rewrite changes, outside the chain, every species word that repeats a species already seen
(the chain's first) and every colour word that repeats a colour already seen (the answer first) into one of
the same kind the story has not used yet, so that the answer colour occurs once and the asked species has
one other member. The answer, the question and the chain are unchanged.

Only training stories are rewritten (load_babi, DataConfig.augment_16); validation and test stories never.

    story = rewrite_story(story, np.random.default_rng(0))   # a parsed story dict (parse_babi_file)
"""

from __future__ import annotations

import re

import numpy as np

from .shortcuts import most_frequent, tie_share

TASK = 16
SPECIES = ("frog", "lion", "rhino", "swan")
COLOURS = ("gray", "green", "white", "yellow")
_IS_SPECIES = re.compile(r"^(\w+) is an? (\w+)\.$")
_IS_COLOUR = re.compile(r"^(\w+) is (\w+)\.$")
_QUESTION = re.compile(r"^What colou?r is (\w+)\?$")


def induction_answer(story: dict) -> str | None:
    """The answer by the task's rule, read from the sentences alone: the colour of the asked animal's species
    as the latest other member of that species with a known colour has it (None when the rule gives none).
    The tests check it against every original label, then against the rewritten stories."""
    asked = _QUESTION.match(story["questions"][0])
    if asked is None:
        return None
    species: dict[str, str] = {}
    colour: dict[str, str] = {}
    order: list[str] = []  # names, in the order their species was stated
    for sentence in story["sentences"][: story["question_after"][0]]:
        if m := _IS_SPECIES.match(sentence):
            species[m[1]] = m[2]
            order.append(m[1])
        elif m := _IS_COLOUR.match(sentence):
            colour[m[1]] = m[2]
    kind = species.get(asked[1])
    for name in reversed(order):
        if name != asked[1] and species[name] == kind and name in colour:
            return colour[name]
    return None


def colours_told(sentences: list[str]) -> list[str]:
    """The colour of every colour fact among `sentences`, in order ("Julius is green." -> "green")."""
    return [m[2] for s in sentences if (m := _IS_COLOUR.match(s)) and m[2] in COLOURS]


def most_common_colours(sentences: list[str]) -> list[str]:
    """The colours told most often in `sentences` (several on a tie): the shortcut's answers."""
    return most_frequent(colours_told(sentences))


def shortcut_share(answer: str, sentences: list[str]) -> float:
    """How often the shortcut (a most common colour, a tie broken at random) gives `answer`: 1/k if it is one
    of the k most common colours of `sentences`, else 0."""
    return tie_share(answer, most_common_colours(sentences))


def rewrite_story(story: dict, rng: np.random.Generator, species: tuple[str, ...] = SPECIES,
                  colours: tuple[str, ...] = COLOURS) -> dict:
    """The story with repeated species and colours outside the answer's chain replaced by unused ones of the
    same kind (see the module docstring), drawn from `species` and `colours` (the words a vocabulary has);
    a story that does not have the task's form, or has no unused word left to draw, comes back unchanged."""
    if len(story["questions"]) != 1 or len(story["supporting"][0]) != 3:
        return story
    chain = story["supporting"][0]  # [asked's species, other member's species, other member's colour]
    first, colour_fact = _IS_SPECIES.match(story["sentences"][chain[0]]), _IS_COLOUR.match(
        story["sentences"][chain[2]])
    if first is None or colour_fact is None or colour_fact[2] != story["answers"][0]:
        return story
    sentences = list(story["sentences"])
    kinds = ((_IS_SPECIES, species, [first[2]]), (_IS_COLOUR, colours, [colour_fact[2]]))  # (.., words, used)
    for i, sentence in enumerate(sentences):
        for pattern, words, used in kinds:
            m = pattern.match(sentence)
            if i in chain or m is None:
                continue
            if m[2] in used:
                free = [w for w in words if w not in used]
                if not free:
                    return story  # nothing unused is left: keep the story as it is
                new = str(rng.choice(free))
                sentences[i] = sentence[: m.start(2)] + new + sentence[m.end(2):]
                used.append(new)
            else:
                used.append(m[2])
    return {**story, "sentences": sentences}


__all__ = ["TASK", "SPECIES", "COLOURS", "induction_answer", "colours_told", "most_common_colours", "shortcut_share",
           "rewrite_story"]
