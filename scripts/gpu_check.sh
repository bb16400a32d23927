#!/usr/bin/env bash
# Every GPU check in one go (about 8 minutes on an H100/H200); results under $OUT:
#   kernels.json       the new paths (Triton link, CUDA-graph steps, compiled + graphed) vs float64 references
#   correctness.json   the earlier checks of the memory on CUDA (scripts/gpu_correctness.py)
#   bench.jsonl        training steps at paper sizes: eager, fused, compiled, graphed; batch 32, 256, 1024;
#                      the peer at the largest batch that fits; the LSTM baseline
#   train-metrics.jsonl, train-run.tar.gz   a fixed-minutes run on all 20 tasks (metrics, weights, config)
#   log.txt            everything printed
# Packages missing on the GPU machine (datasets, dill, multiprocess, and the peer dnc==1.1.0) travel as
# wheels in .whl/, the bAbI data as .gpu_data/tasks_1-20_v1-2.tar.gz: scripts/gpu_prepare.sh makes both; name
# .whl and .gpu_data in the device tool's carry. $DATA, or ../shared/data/babi/tasks_1-20_v1-2 where it
# exists, is used instead of the carried data.
# Knobs: SKIP_TRAIN=1, TRAIN_MINUTES (2), TRAIN_PRESET (joint), TRAIN_BATCH (64), BENCH_SECONDS (150).
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
if [ -z "${DATA:-}" ]; then
  DATA=.gpu_data/tasks_1-20_v1-2.tar.gz
  [ -d ../shared/data/babi/tasks_1-20_v1-2 ] && DATA=../shared/data/babi/tasks_1-20_v1-2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
git log -1 --format='commit %H' 2>/dev/null || true
start=$SECONDS

echo "== new paths vs float64 references (Triton link, CUDA graphs, compiled + graphed)"
timeout 150 python3 scripts/gpu_kernels_check.py "$OUT/kernels.json"
echo "   ($((SECONDS - start)) s)"

echo "== earlier memory checks on CUDA (compile covered above)"
SKIP_COMPILE=1 timeout 60 python3 scripts/gpu_correctness.py "$OUT/correctness.json"
echo "   ($((SECONDS - start)) s)"

echo "== benchmark"
timeout $(( ${BENCH_SECONDS:-150} + 20 )) python3 scripts/gpu_bench.py "$OUT/bench.jsonl" "${BENCH_SECONDS:-150}"
echo "   ($((SECONDS - start)) s)"

if [ -n "${SKIP_TRAIN:-}" ]; then echo "== done in $((SECONDS - start)) s"; exit 0; fi
echo "== ${TRAIN_MINUTES:-2}-minute bAbI training, preset ${TRAIN_PRESET:-joint}, all 20 tasks, compiled + CUDA graphs"
rm -rf /tmp/gpu-run
timeout $(( ${TRAIN_MINUTES:-2} * 60 + 150 )) python3 app.py train --model dnc --preset "${TRAIN_PRESET:-joint}" \
  --set en-10k --tasks all --data-dir "$DATA" --device cuda --compile --batch-size "${TRAIN_BATCH:-64}" \
  --out /tmp/gpu-run --eval-every 2000 --eval-stories 100 --max-steps 1000000 --max-minutes "${TRAIN_MINUTES:-2}" \
  --no-progress
cp /tmp/gpu-run/metrics.jsonl "$OUT/train-metrics.jsonl" 2>/dev/null || echo "no metrics written"
tar czf "$OUT/train-run.tar.gz" --exclude=trainer.pt --exclude='*.tfevents*' -C /tmp gpu-run 2>/dev/null \
  || echo "no run directory"
grep '"kind": "cuda_graphs"' "$OUT/train-metrics.jsonl" 2>/dev/null || echo "no CUDA graphs used"
tail -n 3 "$OUT/train-metrics.jsonl" 2>/dev/null
echo "== done in $((SECONDS - start)) s"
