"""Which bAbI data a run trains on: one dataclass, saved as config.json["data"], and the one loader it keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import JsonConfig, option
from .loading import BabiData, load_babi
from .vocab import Vocabulary


@dataclass
class DataConfig(JsonConfig):
    """Which bAbI data to train on; saved as config.json["data"]."""

    set_name: str = option("en-10k", "--set", fixed=True)  # "en-10k" or "en"
    tasks: str = option("all", "--tasks", fixed=True)  # "all" or a list such as "1,2,5-7"
    data_dir: str | None = option(None, "--data-dir")  # None: env BABI_DNC_DATA, else the Hub
    valid_fraction: float = 0.1
    seed: int = 0  # the validation split; the same for every training seed
    # where an en-10k training file is missing (task 3 in some copies), train on the en (1k) one of the task
    fallback_1k: bool = option(False, "--fallback-1k", fixed=True)
    # task 15's training stories rewritten so that answering the most feared animal no longer pays
    # (data/deduction.py); validation and test stories are never rewritten
    augment_15: bool = option(False, "--augment-15", fixed=True)
    # task 16's training stories rewritten so that its most-common-colour shortcut no longer pays
    # (Franke et al. 2018; data/induction.py); validation and test stories are never rewritten
    augment_16: bool = option(False, "--augment-16", fixed=True)

    def loading_key(self, data_dir: str | Path | None = None) -> tuple:
        """What decides the loaded data: every field, with the folder it is loaded from."""
        return tuple(sorted({**self.to_dict(), "data_dir": str(data_dir or self.data_dir)}.items()))


def load_data(dc: DataConfig, vocab: Vocabulary | None = None, data_dir: str | Path | None = None) -> BabiData:
    """The bAbI data a run's DataConfig names, with its saved vocabulary when given, from `data_dir` when
    given (else the config's): the one path by which training and evaluation load a run's data."""
    return load_babi(set_name=dc.set_name, tasks=dc.tasks, data_dir=data_dir or dc.data_dir,
                     valid_fraction=dc.valid_fraction, seed=dc.seed, vocab=vocab, fallback_1k=dc.fallback_1k,
                     augment_15=dc.augment_15, augment_16=dc.augment_16)
