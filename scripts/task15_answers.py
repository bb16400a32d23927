"""How a run answers task 15 (basic deduction) on test: its error, and how often its answer is the story's
most feared animal (the shortcut data/deduction.py describes) against how often that is the label.

    python scripts/task15_answers.py pretrained:dnc --data-dir ../shared/data/babi/tasks_1-20_v1-2
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

from babi_dnc.data import load_babi
from babi_dnc.data.deduction import shortcut_share
from babi_dnc.runs import expand, load_run
from eval.harness import predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder or pretrained:NAME")
    parser.add_argument("--data-dir", required=True, help="the bAbI folder (tasks_1-20_v1-2)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    run = load_run(expand(args.run)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # other tasks' missing files do not matter here
        test = load_babi("en-10k", [15], args.data_dir, vocab=run.vocab).test
    answers = predict(run.model, test, run.vocab)
    sentences = [test[int(row)]["sentences"] for row in answers["row"]]

    def share(words) -> float:  # how often `words` is the shortcut's answer, over all questions
        return float(np.mean([shortcut_share(w, s) for w, s in zip(words, sentences, strict=True)]))

    print(f"{args.run}: test error {100 * (1 - answers['correct'].mean()):.1f}% over {len(answers)} questions; "
          f"its answer is a most feared animal {100 * share(answers['predicted']):.1f}% of the time "
          f"(the label: {100 * share(answers['expected']):.1f}%, a tie counted as a share)")


if __name__ == "__main__":
    main()
