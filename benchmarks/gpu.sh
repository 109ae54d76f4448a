#!/usr/bin/env bash
# One prepared benchmark run for a machine with an NVIDIA GPU (see benchmarks/README.md).
#
#   bash benchmarks/gpu.sh                 # from the repository root (any folder works)
#   OUT_DIR=results bash benchmarks/gpu.sh
#
# Runs benchmarks/bench.py --device cuda --epoch: the side-by-side table (reference tutorial
# vs ebm_course) plus one 468-iteration epoch of each, and writes $OUT_DIR/gpu.json and
# $OUT_DIR/gpu.log. OUT_DIR defaults to $OUT (set on the project's device machines), else
# bench_out/. The whole script is capped at TOTAL_S seconds (default 450, under 8 minutes).
#
# Python: the first of $PYTHON, .venv/bin/python, python3, python that imports torch, numpy
# and torchvision is used, with the repository on PYTHONPATH (ebm_course is pure Python, so
# no install is needed). The machine may have no internet: only when none of them works is
# a venv (.venv-gpu, with the system's site-packages) created and `pip install -e .` tried.
# Extra arguments go to bench.py (BENCH_DEVICE=cpu and "--quick --epoch-iters 2" make a
# CPU dry run of this script).
set -euo pipefail

START=$SECONDS
TOTAL_S="${TOTAL_S:-450}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT_DIR="${OUT_DIR:-${OUT:-bench_out}}"
DEVICE="${BENCH_DEVICE:-cuda}"
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

remaining() { echo $((TOTAL_S - (SECONDS - START))); }

echo "== GPUs"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L
else
    echo "nvidia-smi not found"
fi

usable() { "$1" -c 'import torch, numpy, torchvision' >/dev/null 2>&1; }

PY=""
for candidate in "${PYTHON:-}" .venv/bin/python python3 python; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if usable "$candidate"; then
        PY="$candidate"
        break
    fi
done
if [ -z "$PY" ]; then
    echo "== no python with torch found: creating .venv-gpu and trying pip install -e ."
    python3 -m venv --system-site-packages .venv-gpu
    timeout 180 .venv-gpu/bin/python -m pip install --quiet --disable-pip-version-check -e .
    PY=.venv-gpu/bin/python
fi

echo "== python: $(command -v "$PY")"
"$PY" - "$DEVICE" <<'EOF'
import sys

import torch

import ebm_course

print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, ebm_course {ebm_course.__version__}")
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    sys.exit("torch.cuda.is_available() is False: no usable GPU")
if torch.cuda.is_available():
    print(f"GPU 0: {torch.cuda.get_device_name(0)}")
EOF

LEFT=$(remaining)
if [ "$LEFT" -lt 60 ]; then
    echo "only ${LEFT}s left of TOTAL_S=${TOTAL_S}: not starting the benchmark" >&2
    exit 1
fi
echo "== bench.py --device $DEVICE --epoch (at most ${LEFT}s)"
timeout --kill-after=10 "$LEFT" "$PY" benchmarks/bench.py --device "$DEVICE" --epoch \
    --json "$OUT_DIR/gpu.json" "$@" 2>&1 | tee "$OUT_DIR/gpu.log"
echo "== done in $((SECONDS - START))s: $OUT_DIR/gpu.json, $OUT_DIR/gpu.log"
