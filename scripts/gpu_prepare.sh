#!/usr/bin/env bash
# What scripts/gpu_check.sh needs and the GPU machine lacks (it cannot download), made here once before a
# GPU run: wheels of datasets, dill, multiprocess and the peer dnc (the versions of this project's venv, for
# CPython 3.12 on x86-64 Linux) in .whl/, and the bAbI data as .gpu_data/tasks_1-20_v1-2.tar.gz. Both are
# ignored by git (.gitignore, .git/info/exclude); name both in the device tool's carry.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
mkdir -p .whl
for name in datasets dill multiprocess dnc; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "$name==$(version "$name")"
done
SRC=${BABI_SRC:-../shared/data/babi}
mkdir -p .gpu_data .git/info
grep -qx '/.gpu_data/' .git/info/exclude 2>/dev/null || echo '/.gpu_data/' >>.git/info/exclude
[ -f .gpu_data/tasks_1-20_v1-2.tar.gz ] || tar czf .gpu_data/tasks_1-20_v1-2.tar.gz -C "$SRC" tasks_1-20_v1-2
ls -la .whl .gpu_data
