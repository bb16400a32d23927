"""Copy trained runs into the package as the shipped models (babi_dnc/pretrained/<name>/).

    python scripts/ship_pretrained.py --run dnc=RUN_DIR --command dnc="babi-dnc train ..." \
        --run lstm=RUN_DIR --command lstm="babi-dnc train ..." --data-dir DATA --hardware "2-core CPU"

Each run's best checkpoint (weights and meta.json, no optimiser state), config, vocabulary and metrics go
into the package with provenance.json (see babi_dnc/pretrained.py). The checksum recorded is that of the
bAbI files the run's data settings select in DATA. How a run's training stories differ from the set's files
(config.json's "training_data", which chat and reports show) is the record its training wrote; a run without
that record is refused.
"""

from __future__ import annotations

import argparse
import subprocess
import warnings

from babi_dnc.checkpoint import read_config
from babi_dnc.data.config import DataConfig, load_data
from babi_dnc.pretrained import export_run, pretrained_root


def pairs(values: list[str], what: str) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep:
            raise SystemExit(f"--{what} takes NAME=VALUE, not {value!r}")
        out[name] = rest
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="NAME=RUN_DIR")
    parser.add_argument("--command", action="append", required=True, help="NAME=the command that trained it")
    parser.add_argument("--data-dir", required=True, help="the bAbI folder the runs were trained on")
    parser.add_argument("--hardware", required=True, help="where they were trained, e.g. '2-core CPU'")
    args = parser.parse_args()
    runs, commands = pairs(args.run, "run"), pairs(args.command, "command")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    for name, run_dir in runs.items():
        config = read_config(run_dir)
        if "training_data" not in config:
            raise SystemExit(f"{run_dir} was trained before config.json recorded how its training data differs "
                             "from the set's files; ship a run trained at commit beab62f or later.")
        data_config = DataConfig.from_dict(config["data"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a missing training file is recorded in the run already
            babi = load_data(data_config, data_dir=args.data_dir)
        dest = export_run(run_dir, pretrained_root() / name, commands[name], babi.source["sha256"],
                          hardware=args.hardware, shipped_at_commit=commit, missing_files=babi.missing)
        print(f"{name}: {run_dir} -> {dest}")


if __name__ == "__main__":
    main()
