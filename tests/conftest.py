"""Shared fixtures.

- `tiny_babi_dir`: a tiny bAbI folder (`tasks_1-20_v1-2/en-10k/`, raw format) with tasks 1 and 8
  (task 8 has multi-word answers such as "apple,football"), generated deterministically.
- `tiny_data`: that folder loaded with `data.load_babi` (tasks 1 and 8).
- `tiny_run`: a run directory trained once per session with the tiny DNC preset (a few seconds); it has
  config.json, vocab.json, metrics.jsonl and checkpoints/latest and checkpoints/best.
- `ToyTask`: a synthetic Task (random ids, answers at random steps) for loop tests that need no data.
- `REAL_BABI` / `needs_real_babi`: the real bAbI folder (the Makefile's rule: $BABI_DNC_DATA, which
  `make test DATA=...` sets, else the copy in ../shared) and the skip mark of the tests that read it.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import pytest
import torch

from babi_dnc.train import Task

NAMES = ["Mary", "John", "Daniel", "Sandra"]
PLACES = ["bathroom", "hallway", "garden", "office", "kitchen", "bedroom"]
MOVES = ["moved to", "went to", "journeyed to", "travelled to", "went back to"]
OBJECTS = ["apple", "football", "milk"]
SHARED_BABI = Path(__file__).resolve().parents[2] / "shared" / "data" / "babi" / "tasks_1-20_v1-2"


def find_real_babi(env_value: str | None, shared: Path = SHARED_BABI) -> Path | None:
    """The real bAbI folder, by the Makefile's rule (DATA ?= $BABI_DNC_DATA, else the ../shared copy): the
    environment's path when it is set, else `shared`; a `tasks_1-20_v1-2` folder or its parent, holding
    en-10k/. None where that path is no such folder (an archive too: these tests read the files)."""
    candidate = Path(env_value).expanduser() if env_value else shared
    for folder in (candidate, candidate / "tasks_1-20_v1-2"):
        if (folder / "en-10k").is_dir():
            return folder
    return None


REAL_BABI = find_real_babi(os.environ.get("BABI_DNC_DATA"))
needs_real_babi = pytest.mark.skipif(REAL_BABI is None, reason="no real bAbI en-10k folder: set BABI_DNC_DATA "
                                     "(make test DATA=PATH) or put one in ../shared/data/babi/tasks_1-20_v1-2")


def _task1_story(rng: random.Random) -> list[str]:
    """Task 1 (single supporting fact): moves, and "Where is X?" after every two statements."""
    lines, where, n = [], {}, 0
    for _ in range(rng.randint(2, 3)):
        for _ in range(2):
            name, place = rng.choice(NAMES), rng.choice(PLACES)
            n += 1
            lines.append(f"{n} {name} {rng.choice(MOVES)} the {place}.")
            where[name] = (place, n)
        name = rng.choice(sorted(where))
        n += 1
        lines.append(f"{n} Where is {name}? \t{where[name][0]}\t{where[name][1]}")
    return lines


def _task8_story(rng: random.Random) -> list[str]:
    """Task 8 (lists/sets): someone picks objects up; "What is X carrying?" has 1-2 answer words."""
    name = rng.choice(NAMES)
    lines, held, support, n = [], [], [], 0
    for _ in range(rng.randint(2, 3)):
        n += 1
        obj = rng.choice([o for o in OBJECTS if o not in held] or OBJECTS)
        if obj not in held:
            held.append(obj)
        lines.append(f"{n} {name} got the {obj} there.")
        support.append(str(n))
        n += 1
        answer = ",".join(sorted(held))
        lines.append(f"{n} What is {name} carrying? \t{answer}\t{' '.join(support)}")
    return lines


def write_tiny_babi(root: Path, train_stories: int = 40, test_stories: int = 10, seed: int = 0) -> Path:
    """Write a tiny `tasks_1-20_v1-2` folder (en-10k, tasks 1 and 8) under `root`; returns the folder."""
    folder = root / "tasks_1-20_v1-2"
    (folder / "en-10k").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for task, name, make in ((1, "single-supporting-fact", _task1_story), (8, "lists-sets", _task8_story)):
        for split, count in (("train", train_stories), ("test", test_stories)):
            lines = [line for _ in range(count) for line in make(rng)]
            (folder / "en-10k" / f"qa{task}_{name}_{split}.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="session")
def tiny_babi_dir(tmp_path_factory) -> Path:
    """A tiny bAbI folder (tasks_1-20_v1-2 with en-10k tasks 1 and 8); pass it as --data-dir."""
    return write_tiny_babi(tmp_path_factory.mktemp("babi"))


def load_tiny(folder: Path, cache: Path, tasks: str = "1,8"):
    from babi_dnc.data import load_babi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the other 18 tasks are missing on purpose
        return load_babi("en-10k", tasks=tasks, data_dir=folder, valid_fraction=0.2, seed=0, cache_dir=cache)


@pytest.fixture(scope="session")
def tiny_data(tiny_babi_dir, tmp_path_factory):
    """`load_babi` of the tiny folder (tasks 1 and 8, 20% validation)."""
    return load_tiny(tiny_babi_dir, tmp_path_factory.mktemp("babi-cache"))


def quiet_config(**changes):
    """A TrainConfig for tests: tiny preset, CPU, no progress bar, no TensorBoard."""
    import dataclasses

    from babi_dnc.babi_task import TRAIN_PRESETS

    base = dataclasses.replace(TRAIN_PRESETS["tiny"], device="cpu", progress=False, tensorboard=False)
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="session")
def tiny_run(tiny_babi_dir, tmp_path_factory) -> Path:
    """A run directory trained once per session: tiny DNC, tasks 1 and 8, 8 steps (evaluated at 4 and 8)."""
    from babi_dnc.babi_train import train_babi
    from babi_dnc.data.config import DataConfig
    from babi_dnc.models import preset

    out = tmp_path_factory.mktemp("runs") / "dnc-tiny"
    data_config = DataConfig(set_name="en-10k", tasks="1,8", data_dir=str(tiny_babi_dir), valid_fraction=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_babi(preset("tiny"), data_config, quiet_config(max_steps=8, eval_every=4, tensorboard=True), out)
    return out


class ToyTask(Task):
    """A synthetic Task: random word ids, an answer at ~1/3 of the real steps (the previous word).

    nan_at: steps whose loss is multiplied by NaN; on_step: a callback(step) run in next_batch.
    """

    unit = "sequences"

    def __init__(self, vocab_size=6, batch_size=4, length=7, seed=0, nan_at=(), on_step=None):
        self.vocab_size, self.batch_size, self.length = vocab_size, batch_size, length
        self.generator = torch.Generator().manual_seed(seed)
        self.nan_at, self.on_step = set(nan_at), on_step
        self.step = -1
        self.evaluations = 0

    def make_batch(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        B, T, V = self.batch_size, self.length, self.vocab_size
        ids = torch.randint(0, V, (B, T), generator=generator)
        lengths = torch.randint(2, T + 1, (B,), generator=generator)
        mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
        answer = (torch.rand(B, T, generator=generator) < 0.35) & mask
        answer[torch.arange(B), lengths - 1] = True  # at least one answer per row
        answer[:, 0] = False
        targets = torch.where(answer, ids.roll(1, dims=1), torch.full_like(ids, -100))
        return {"ids": ids, "mask": mask, "targets": targets}

    def next_batch(self, step):
        self.step = step
        if self.on_step is not None:
            self.on_step(step)
        return self.make_batch(self.generator)

    def loss(self, model, batch):
        from babi_dnc.babi_task import answer_loss

        logits, _ = model(batch["ids"], mask=batch["mask"])
        loss, stats = answer_loss(logits, batch["targets"])
        if self.step in self.nan_at:
            loss = loss * float("nan")
        return loss, stats

    def evaluate(self, model):
        from babi_dnc.babi_task import answer_loss

        self.evaluations += 1
        batch = self.make_batch(torch.Generator().manual_seed(1234))
        logits, _ = model(batch["ids"], mask=batch["mask"])
        _, stats = answer_loss(logits, batch["targets"])
        return {"error": 1.0 - float(stats["correct"]) / float(stats["tokens"])}

    def state_dict(self):
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])


@pytest.fixture
def toy_model():
    """A tiny DNC over ToyTask's 6 words, built with seed 0."""
    from babi_dnc.models import build_model, preset

    torch.manual_seed(0)
    return build_model(preset("tiny"), 6)
