"""Published bAbI en-10k results (joint training, % question error), as data with their sources.

    per_task = published_tasks()                 # DataFrame indexed by task: the CSV's columns
    PUBLISHED["dnc1"].mean_error, .mean_sd       # 16.7, 7.6 (Graves et al. 2016, 20 runs)
    published_column("dnc1", tasks=[1, 2])       # an aggregate.Column for the tables and plots

The per-task numbers live in `eval/reference/babi_en10k_joint.csv` and the citations in
`eval/reference/README.md`; both are part of the project (nothing is read from outside it at run time).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from .aggregate import Column

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
CSV = REFERENCE_DIR / "babi_en10k_joint.csv"
GRAVES_2016 = ('Graves et al., "Hybrid computing using a neural network with dynamic external memory", '
               "Nature 538, 471-476 (2016), Extended Data Table 1")
SEED_REPO = "github.com/bgavran/DNC (README)"
FAILED_ABOVE = 5.0  # % error above which a task has failed


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
}  # fmt: skip

# The published columns of the comparison table, in order.
TABLE_COLUMNS = ("dnc1", "lstm512", "seed_dnc")


@cache
def published_tasks() -> pd.DataFrame:
    """The per-task CSV, indexed by task (1..20): name and every published column (% error)."""
    frame = pd.read_csv(CSV).set_index("task").sort_index()
    if list(frame.index) != list(range(1, 21)):
        raise ValueError(f"{CSV} must have one row per task 1..20")
    return frame


def published_column(key: str, tasks: list[int] | None = None) -> Column:
    """`PUBLISHED[key]` over `tasks` (default all 20) as a comparison column (`aggregate.Column`).

    Over all 20 tasks the summary numbers are the paper's. Over a subset they are derived from the
    per-task columns: the mean of the per-task means (no sd, which needs the single runs) and the number
    of tasks whose mean is above 5%; `note` says so.
    """
    p = PUBLISHED[key]
    if p.mean_column is None:
        raise ValueError(f"{key} has no per-task numbers")
    frame = published_tasks()
    tasks = sorted(tasks) if tasks else list(frame.index)
    per_task = pd.DataFrame({
        "mean": frame.loc[tasks, p.mean_column].astype(float),
        "sd": frame.loc[tasks, p.sd_column].astype(float) if p.sd_column else float("nan"),
    }, index=pd.Index(tasks, name="task"))  # fmt: skip
    if tasks == list(frame.index):
        return Column(key, p.label, "published", per_task, p.mean_error, p.mean_sd, p.failed, p.failed_sd,
                      p.best_error, p.best_failed, runs=p.runs, source=p.source)  # fmt: skip
    return Column(
        key, p.label, "published", per_task,
        mean_error=float(per_task["mean"].mean()), mean_sd=None,
        failed=float((per_task["mean"] > FAILED_ABOVE).sum()), failed_sd=None, runs=p.runs, source=p.source,
        note="over these tasks only: the mean of the published per-task means, and the tasks whose mean is "
             "above 5%",
    )  # fmt: skip
