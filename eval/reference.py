"""Published bAbI en-10k results (joint training, % question error), as data with their sources.

    per_task = published_tasks()                 # DataFrame indexed by task: the CSV's columns
    PUBLISHED["dnc1"].mean_error, .mean_sd       # 16.7, 7.6 (Graves et al. 2016, 20 runs)

The per-task numbers live in `eval/reference/babi_en10k_joint.csv` and the citations in
`eval/reference/README.md`; both are part of the project (nothing is read from outside it at run time).
`aggregate.published_column` turns them into a column of the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
CSV = REFERENCE_DIR / "babi_en10k_joint.csv"
GRAVES_2016 = ('Graves et al., "Hybrid computing using a neural network with dynamic external memory", '
               "Nature 538, 471-476 (2016), Extended Data Table 1")
SEED_REPO = "github.com/bgavran/DNC (README)"


@dataclass(frozen=True)
class Published:
    """One published model: its per-task CSV columns and its summary over all 20 tasks."""

    key: str
    label: str  # column header, e.g. "DNC1 (Graves 2016)"
    mean_column: str | None  # per-task mean error column of the CSV (None: summary only)
    sd_column: str | None  # per-task standard deviation over runs (None: a single run)
    runs: int | None
    mean_error: float | None  # over the 20 tasks
    mean_sd: float | None
    failed: float | None  # failed tasks (> 5% error)
    failed_sd: float | None
    best_error: float | None = None  # best single run
    best_failed: int | None = None
    source: str = GRAVES_2016


PUBLISHED: dict[str, Published] = {
    "dnc1": Published("dnc1", "DNC1, Graves 2016", "deepmind_dnc1_mean", "deepmind_dnc1_sd", 20,
                      16.7, 7.6, 11.2, 5.4, 4.3, 2),
    "lstm512": Published("lstm512", "LSTM 512, Graves 2016", "deepmind_lstm512_mean", "deepmind_lstm512_sd", 20,
                         27.3, 0.8, 17.1, 1.0, 25.2, 15),
    "seed_dnc": Published("seed_dnc", "TF DNC, bgavran", "seed_dnc", None, 1, 13.0, None, 7, None,
                          source=SEED_REPO),
    "seed_lstm256": Published("seed_lstm256", "LSTM 256, bgavran (1 run)", "seed_lstm256", None, 1,
                              None, None, None, None, source=SEED_REPO),
    "seed_lstm512": Published("seed_lstm512", "LSTM 512, bgavran (1 run)", "seed_lstm512", None, 1,
                              None, None, None, None, source=SEED_REPO),
    "dnc2": Published("dnc2", "DNC2, Graves 2016 (best run)", None, None, None, None, None, None, None, 3.8, 2),
    "memn2n": Published("memn2n", "MemN2N joint (as quoted by Graves 2016)", None, None, None, 7.5, None, 6, None,
                        source="Sukhbaatar et al. 2015, as quoted by Graves et al. 2016"),
    "sdnc": Published("sdnc", "SDNC, Rae 2016", None, None, 15, 6.4, 2.5, 4.1, 1.6, 2.9, 1,
                      source="Rae et al. 2016, arXiv:1610.09027"),
    "dnc_md": Published("dnc_md", "DNC-MD, Csordás 2019", None, None, None, 9.5, 1.6, None, None,
                        source="Csordás & Schmidhuber 2019, arXiv:1904.10278"),
    "biadnc": Published("biadnc", "BiADNC, Franke 2018", None, None, 5, 3.2, 0.5, 1.4, 0.5,
                        source="Franke et al. 2018, arXiv:1807.02658"),
    "ut_act": Published("ut_act", "Universal Transformer + ACT (best of 10)", None, None, 10, None, None, None, None,
                        0.29, 0, source="Dehghani et al. 2018, arXiv:1807.03819"),
}

# The published columns of the comparison table, in order.
TABLE_COLUMNS = ("dnc1", "lstm512", "seed_dnc")


@cache
def published_tasks() -> pd.DataFrame:
    """The per-task CSV, indexed by task (1..20): name and every published column (% error)."""
    frame = pd.read_csv(CSV).set_index("task").sort_index()
    if list(frame.index) != list(range(1, 21)):
        raise ValueError(f"{CSV} must have one row per task 1..20")
    return frame
