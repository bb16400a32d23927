"""Write the shipped models' test errors from results/comparison.csv into the README's results table.

    python scripts/readme_table.py          # rewrite README.md in place
    python scripts/readme_table.py --check  # exit 1 if the README differs from the committed results

The table's first two number columns are ours (DNC, LSTM); the published columns are left as they are.
A task's error is bold when it is solved (at most 5%, babi_dnc.metrics); the mean row is always bold.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from babi_dnc.metrics import is_failed
from eval.report.tables import fmt, fmt_count

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
COMPARISON = ROOT / "results" / "comparison.csv"
OURS = ("DNC: mean", "LSTM: mean")


def cell(error: float, bold: bool) -> str:
    return f"**{fmt(error)}**" if bold else fmt(error)


def our_cells(table: pd.DataFrame, row: str) -> list[str]:
    """The README cells of our two models for one comparison row (a task number, mean_error, failed_tasks)."""
    values = [float(table.loc[row, column]) for column in OURS]
    if row == "failed_tasks":
        return [fmt_count(value) for value in values]
    if row == "mean_error":
        return [cell(value, True) for value in values]
    return [cell(value, not is_failed(value / 100)) for value in values]  # the csv holds percent


def row_key(first_cell: str) -> str | None:
    """Which comparison row a README table row shows, from its first cell."""
    if first_cell.startswith("**mean error"):
        return "mean_error"
    if first_cell.startswith("failed tasks"):
        return "failed_tasks"
    task = re.match(r"(\d+) ", first_cell)
    return task.group(1) if task else None


def rewrite(readme: str, table: pd.DataFrame) -> str:
    lines = readme.splitlines(keepends=True)
    header = next(i for i, line in enumerate(lines) if line.startswith("| task | DNC (ours)"))
    for i in range(header + 2, len(lines)):
        if not lines[i].startswith("|"):
            break
        cells = lines[i].strip().strip("|").split("|")
        key = row_key(cells[0].strip())
        if key is None or key not in table.index:
            continue
        cells[1:3] = [f" {value} " for value in our_cells(table, key)]
        lines[i] = "|" + "|".join(cells) + "|\n"
    return "".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether the README is up to date")
    args = parser.parse_args()
    table = pd.read_csv(COMPARISON, index_col="row")
    table.index = table.index.astype(str)
    old = README.read_text()
    new = rewrite(old, table)
    if args.check:
        sys.exit(0 if new == old else "README.md's results table differs from results/comparison.csv: "
                 "run python scripts/readme_table.py")
    README.write_text(new)
    dnc, lstm = (table.loc["mean_error", column] for column in OURS)
    print(f"README table: DNC {dnc:.1f}%, LSTM {lstm:.1f}%, failed {table.loc['failed_tasks', OURS[0]]:.0f}")


if __name__ == "__main__":
    main()
