"""`babi-dnc train` with the training step replayed as CUDA graphs (run by scripts/gpu_check.sh).

Until the training loop calls `cuda_graphs.install_cuda_graphs` itself (right after it compiles the model),
this wraps the loop's `compile_model` so that a `--compile` run on CUDA also installs the graphs; where the
loop already does it, the second call changes nothing. Arguments: those of `babi-dnc train`. After the run,
prints the graphs' counters (captures, replays, eager calls).
"""

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from babi_dnc.cuda_graphs import GraphedForward, install_cuda_graphs  # noqa: E402

installed: list[GraphedForward] = []


def _wrap(module) -> None:
    original = module.compile_model

    def compile_and_graph(model, *args, **kwargs):
        original(model, *args, **kwargs)
        graphed = install_cuda_graphs(model)
        if graphed is not None:
            installed.append(graphed)

    module.compile_model = compile_and_graph


for name in ("babi_dnc.train.loop", "babi_dnc.training"):  # where the loop lives, before and after its split
    try:
        _wrap(importlib.import_module(name))
    except (ImportError, AttributeError):
        continue

import app  # noqa: E402

sys.argv = ["babi-dnc", "train", *sys.argv[1:]]
try:
    app.main()
except SystemExit as e:
    code = e.code
else:
    code = 0
for graphed in installed:
    print(f"CUDA graphs: {graphed.stats}" + (f", failed: {graphed.failed}" if graphed.failed else ""), flush=True)
sys.exit(code)
