"""The GPU benchmark of scripts/gpu_check.sh: paper-size training steps (forward, backward, RMSProp) of the
DNC in its variants, the peer at the largest batch that fits, and the LSTM baseline. One JSON line per
measurement goes to argv[1]; a failure or time-out of one measurement does not stop the others.

Variants (BenchConfig fields): eager = PyTorch link, no compile, no graphs; fused = the Triton link kernels;
compiled = the time step through torch.compile (Inductor, around the Triton ops); graphed = forward and
backward of the whole unrolled model replayed as CUDA graphs (cuda_graphs.py, as training uses them).
The most important runs come first (the issue's target: batch 256 x 100, compiled and graphed).
"""

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from babi_dnc.bench import BenchConfig  # noqa: E402

out = Path(sys.argv[1])
budget = float(sys.argv[2]) if len(sys.argv) > 2 else 330.0  # seconds for all runs together
quick = dict(device="cuda", steps=3, warmup=2)
runs = [  # (variant, config, time limit in seconds)
    ("compiled+graphed", BenchConfig(model="dnc", batch_size=256, compile=True, cuda_graph=True, **quick), 150),
    ("compiled+graphed", BenchConfig(model="dnc", batch_size=1024, compile=True, cuda_graph=True, **quick), 90),
    ("compiled+graphed", BenchConfig(model="dnc", batch_size=32, compile=True, cuda_graph=True, **quick), 60),
    ("graphed", BenchConfig(model="dnc", batch_size=256, cuda_graph=True, **quick), 60),
    ("fused", BenchConfig(model="dnc", batch_size=256, **quick), 40),
    ("eager", BenchConfig(model="dnc", batch_size=256, triton=False, **quick), 40),
    ("compiled", BenchConfig(model="dnc", batch_size=256, compile=True, **quick), 60),
    ("compiled+graphed bf16", BenchConfig(model="dnc", batch_size=256, compile=True, cuda_graph=True, amp=True,
                                          **quick), 60),
    ("peer", BenchConfig(model="peer", batch_size=1024, steps=2, warmup=1, device="cuda"), 90),
    ("peer", BenchConfig(model="peer", batch_size=512, steps=2, warmup=1, device="cuda"), 60),
    ("peer", BenchConfig(model="peer", batch_size=256, steps=2, warmup=1, device="cuda"), 45),
    ("graphed", BenchConfig(model="dnc", batch_size=32, cuda_graph=True, **quick), 40),
    ("fused", BenchConfig(model="dnc", batch_size=32, **quick), 30),
    ("eager", BenchConfig(model="dnc", batch_size=32, triton=False, **quick), 30),
    ("fused", BenchConfig(model="dnc", batch_size=1024, **quick), 40),
    ("lstm", BenchConfig(model="lstm", batch_size=256, **quick), 30),
]
code = "import json,sys; from babi_dnc.bench import BenchConfig, measure; "
code += "print(json.dumps(measure(BenchConfig(**json.loads(sys.argv[1])))))"
start, peer_done, rows = time.perf_counter(), False, []
for variant, cfg, limit in runs:
    if cfg.model == "peer" and peer_done:
        continue  # the peer's largest batch that fits has been measured
    left = budget - (time.perf_counter() - start)
    if left < 20:
        print(f"{variant} B={cfg.batch_size}: skipped (time budget spent)", flush=True)
        continue
    args = json.dumps(dataclasses.asdict(cfg))
    try:
        proc = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True,
                              timeout=min(limit, left))
        if proc.returncode == 0:
            row = json.loads(proc.stdout.strip().splitlines()[-1])
        else:
            errors = [line for line in proc.stderr.strip().splitlines() if "Error" in line]
            row = dataclasses.asdict(cfg) | {"error": errors[-4:] or proc.stderr.strip().splitlines()[-3:]}
    except subprocess.TimeoutExpired:
        row = dataclasses.asdict(cfg) | {"error": f"timed out after {min(limit, left):.0f} s"}
    row["variant"] = variant
    rows.append(row)
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    if "error" in row:
        print(f"{variant:22s} B={cfg.batch_size:4d}: ERROR {row['error']}", flush=True)
        continue
    peer_done = peer_done or cfg.model == "peer"
    print(f"{variant:22s} B={cfg.batch_size:4d} T={cfg.seq_len}: step {row['step_s']:.4f}s "
          f"(fwd {row['forward_s']:.4f}, bwd {row['backward_s']:.4f}), {row['story_steps_per_s']:,.0f} story-steps/s, "
          f"peak {row['peak_memory_bytes'] / 2**30:.2f} GiB, link {row.get('link')}, graphs {row.get('graphs')}",
          flush=True)

ours = [r for r in rows if r.get("model") == "dnc" and "error" not in r]
peers = [r for r in rows if r.get("model") == "peer" and "error" not in r]
if ours and peers:
    best, peer = max(ours, key=lambda r: r["story_steps_per_s"]), max(peers, key=lambda r: r["story_steps_per_s"])
    print(f"best DNC: {best['variant']} B={best['batch_size']} {best['story_steps_per_s']:,.0f} story-steps/s; "
          f"peer B={peer['batch_size']} {peer['story_steps_per_s']:,.0f}: "
          f"{best['story_steps_per_s'] / peer['story_steps_per_s']:.1f}x", flush=True)
target = [r for r in ours if r["batch_size"] == 256 and r["seq_len"] == 100]
if target:
    top = max(target, key=lambda r: r["story_steps_per_s"])
    print(f"batch 256 x 100: {top['story_steps_per_s']:,.0f} story-steps/s ({top['variant']}; target 250,000)")
