"""The GPU benchmark of scripts/gpu_check.sh: paper-size training steps of the DNC, the LSTM baseline and the
peer at several batch sizes, and one long-story step (batch 256 x 800 steps). One JSON line per measurement
goes to argv[1]; a failure or time-out of one measurement does not stop the others."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from babi_dnc.bench import BenchConfig  # noqa: E402

out = Path(sys.argv[1])
quick = dict(device="cuda", steps=3, warmup=1)
runs = [  # (config, time limit in seconds), the most important first
    (BenchConfig(model="dnc", batch_size=256, cuda_graph=True, **quick), 60),
    (BenchConfig(model="dnc", batch_size=256, cuda_graph=True, amp=True, **quick), 60),
    (BenchConfig(model="dnc", batch_size=128, cuda_graph=True, **quick), 50),
    (BenchConfig(model="dnc", batch_size=32, cuda_graph=True, **quick), 50),
    (BenchConfig(model="dnc", batch_size=256, **quick), 40),
    (BenchConfig(model="peer", batch_size=256, steps=2, warmup=1, device="cuda"), 60),
    (BenchConfig(model="dnc", batch_size=32, **quick), 40),
    (BenchConfig(model="dnc", batch_size=128, **quick), 40),
    (BenchConfig(model="lstm", batch_size=128, **quick), 30),
    (BenchConfig(model="dnc", batch_size=256, seq_len=800, checkpoint_steps=40, amp=True, steps=1, warmup=0,
                 device="cuda"), 90),
    (BenchConfig(model="dnc", batch_size=256, compile=True, amp=True, steps=3, warmup=2, device="cuda"), 120),
]
code = "import json,sys; from babi_dnc.bench import BenchConfig, measure; "
code += "print(json.dumps(measure(BenchConfig(**json.loads(sys.argv[1])))))"
for cfg, limit in runs:
    args = json.dumps(dataclasses.asdict(cfg))
    try:
        proc = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True, timeout=limit)
        if proc.returncode == 0:
            row = json.loads(proc.stdout.strip().splitlines()[-1])
        else:
            errors = [line for line in proc.stderr.strip().splitlines() if "Error" in line]
            row = dataclasses.asdict(cfg) | {"error": errors[-4:]}
    except subprocess.TimeoutExpired:
        row = dataclasses.asdict(cfg) | {"error": f"timed out after {limit} s"}
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    if "error" in row:
        print(f"{cfg.model} B={cfg.batch_size} T={cfg.seq_len}: ERROR {row['error']}", flush=True)
    else:
        print(f"{cfg.model:5s} B={cfg.batch_size:3d} T={cfg.seq_len:3d} amp={cfg.amp!s:5s} compile={cfg.compile!s:5s} "
              f"graph={cfg.cuda_graph!s:5s} "
              f"ckpt={cfg.checkpoint_steps}: step {row['step_s']:.3f}s (fwd {row['forward_s']:.3f}, "
              f"bwd {row['backward_s']:.3f}), {row['story_steps_per_s']:,.0f} story-steps/s, "
              f"peak {row['peak_memory_bytes'] / 2**30:.2f} GiB", flush=True)
