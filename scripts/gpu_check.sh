#!/usr/bin/env bash
# GPU checks in one go (well under 8 minutes on an H100/H200): correctness against the CPU float64 result,
# the benchmark at batch 32/128/256 (+ long stories, compile, the peer), and a 2-minute bAbI training at the
# paper preset. Results go to $OUT (correctness.json, bench.jsonl, train-metrics.jsonl, log.txt).
# Wheels missing on the GPU machine (datasets, dill, multiprocess, dnc) travel in .whl/, the en-10k data
# in .gpu_data/ (see BENCHMARKS.md for how to prepare both).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
DATA=${DATA:-.gpu_data/tasks_1-20_v1-2.tar.gz}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__)"
start=$SECONDS

echo "== correctness"
timeout 150 python3 scripts/gpu_correctness.py "$OUT/correctness.json"
echo "   ($((SECONDS - start)) s)"

echo "== benchmark"
timeout ${BENCH_SECONDS:-330} python3 scripts/gpu_bench.py "$OUT/bench.jsonl"
echo "   ($((SECONDS - start)) s)"

if [ -n "${SKIP_TRAIN:-}" ]; then echo "== done in $((SECONDS - start)) s"; exit 0; fi
echo "== 2-minute bAbI training, paper preset, all tasks"
rm -rf /tmp/gpu-run
timeout 300 python3 app.py train --model dnc --preset paper --set en-10k --tasks all --no-progress \
  --data-dir "$DATA" --device cuda --batch-size ${TRAIN_BATCH:-128} --out /tmp/gpu-run --eval-every 1000000 \
  --max-steps 1000000 --max-minutes ${TRAIN_MINUTES:-2}
cp /tmp/gpu-run/metrics.jsonl "$OUT/train-metrics.jsonl" 2>/dev/null || echo "no metrics written"
tail -n 3 "$OUT/train-metrics.jsonl" 2>/dev/null
echo "== done in $((SECONDS - start)) s"
