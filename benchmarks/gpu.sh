#!/usr/bin/env bash
# `make test-gpu`: ONE prepared run for a machine with an NVIDIA GPU (see benchmarks/README.md).
#
#   bash benchmarks/gpu.sh                      # from anywhere; the GPU run (needs CUDA)
#   bash benchmarks/gpu.sh --dry-run            # the same four parts, small, on the CPU
#   bash benchmarks/gpu.sh --parts bench,epoch  # only some parts (the others are SKIP)
#
# In order, each under its own time limit (`timeout`), all four within TOTAL_S:
#   1 tests    python -m pytest: the whole suite, with the repository's pytest configuration
#              (spread over TEST_WORKERS processes where pytest-xdist is installed)
#   2 lessons  every lesson under nbval (the Makefile's NBVAL flags), EBM_COURSE_QUICK=1,
#              EBM_COURSE_DEVICE=cuda
#   3 bench    benchmarks/bench.py --device cuda: the side-by-side table (reference vs ours)
#   4 epoch    benchmarks/bench.py --device cuda --epoch --rounds 1: one 468-iteration epoch of
#              the tutorial's recipe for each implementation (its table is from 1 round only)
# then a summary table (PASS / FAIL / TIMEOUT / SKIP, seconds and limit per part). Exit status
# 0 only when no part failed or timed out; 1 when one did; 2 for bad arguments or no CUDA.
#
# Without a usable CUDA GPU it stops at once, before anything else, with a message and exit
# status 2 -- unless --dry-run is given: then the four parts run on the CPU at smoke-test
# sizes (a few test files, the first lessons, bench.py --quick, a 2-iteration "epoch"), which
# tests the script itself (tests/test_gpu_script.py).
#
# Output: $OUT_DIR (default $OUT, which the project's device machines collect, else bench_out/)
# gets gpu.log (everything printed), gpu_summary.json, bench.json, bench_epoch.json, pytest.xml
# and lessons.xml (JUnit reports).
#
# Python: the first of $PYTHON, .venv/bin/python, python3, python that imports torch, numpy
# and torchvision is used, with the repository on PYTHONPATH (ebm_course is pure Python, so no
# install is needed). The machine may have no internet: only when none of them works is a venv
# (.venv-gpu, with the system's site-packages) created and `pip install -e .` tried. Modules
# that the tests or lessons need but that Python lacks (often nbval, ipykernel, ipywidgets)
# are installed from wheels in .whl/ when that folder exists (`make gpu-wheels` fills it on a
# machine with internet), into a temporary folder put on PYTHONPATH; else pip is tried briefly.
#
# Settings (environment):
#   TOTAL_S      from the set-up to the end of part 4, s (default 515: with the CUDA check
#                before it, the 10 s that `timeout` grants a part to stop, and the summary,
#                under 9 minutes)
#   TESTS_S, LESSONS_S, BENCH_S, EPOCH_S
#                each part's budget, s (defaults 180, 110, 70, 145); a part may also use what
#                earlier parts left unused, as long as the later parts keep their budgets
#   TEST_WORKERS pytest-xdist processes for part 1 (default: half the cores, at most 8; 0 or 1:
#                one process)
#   PYTEST_ARGS  extra arguments for part 1 (e.g. "-x" or "--deselect tests/test_golden.py")
#   NBVAL_FLAGS  nbval's flags (default: the Makefile's NBVAL, which `make test-gpu` passes)
#   BENCH_ARGS   extra arguments for bench.py in parts 3 and 4
#   WHEELS_DIR   wheels for missing modules (default .whl)
#   DRY_TESTS    dry run: the test files of part 1, run with -m "not slow" (default
#                tests/test_gpu_script.py tests/test_models.py tests/test_metrics.py)
#   DRY_LESSONS  dry run: how many lessons, from the first (default 2)
#   DRY_NOTEBOOKS dry run: notebooks to run instead of those lessons (the test's tiny one)
set -euo pipefail

# ----------------------------------------------------------------------------- options

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

DRY_RUN=0
PARTS="tests,lessons,bench,epoch"
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --parts) PARTS="${2:?--parts needs a list such as bench,epoch}"; shift ;;
        --parts=*) PARTS="${1#--parts=}" ;;
        -h | --help) usage; exit 0 ;;
        *) echo "gpu.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
ALL_PARTS=(tests lessons bench epoch)
for p in ${PARTS//,/ }; do
    case " ${ALL_PARTS[*]} " in
        *" $p "*) ;;
        *) echo "gpu.sh: unknown part '$p' in --parts (parts: ${ALL_PARTS[*]})" >&2; exit 2 ;;
    esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$PWD"

# ----------------------------------------------------------------------------- Python, CUDA

# One Python start per candidate (import torch is slow on a busy machine): exit status 4 when
# it cannot import torch, numpy and torchvision; else it prints torch's and the GPU's facts,
# with exit status 3 when CUDA cannot run a kernel.
PROBE='
import sys

try:
    import numpy  # noqa: F401
    import torch
    import torchvision  # noqa: F401
except Exception as err:
    print(f"cannot import torch, numpy and torchvision: {err}")
    sys.exit(4)
print(f"torch {torch.__version__} (CUDA build {torch.version.cuda}), python {sys.version.split()[0]}")
if not torch.cuda.is_available():
    print("torch.cuda.is_available() is False")
    sys.exit(3)
try:
    torch.ones(1, device="cuda").add_(1)
    torch.cuda.synchronize()
except Exception as err:
    print(f"CUDA is there but failed to run a kernel: {type(err).__name__}: {err}")
    sys.exit(3)
print(f"GPU 0: {torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} visible)")
'

PY=""
for candidate in "${PYTHON:-}" .venv/bin/python python3 python; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    cuda_rc=0
    CUDA_FACTS="$("$candidate" -c "$PROBE" 2>&1)" || cuda_rc=$?
    if [ "$cuda_rc" = 0 ] || [ "$cuda_rc" = 3 ]; then  # torch imports (with or without CUDA)
        PY="$(command -v "$candidate")"
        [[ "$PY" == /* ]] || PY="$REPO/$PY"
        break
    fi
done
if [ -z "$PY" ]; then
    echo "== no python with torch found: creating .venv-gpu and trying pip install -e ."
    python3 -m venv --system-site-packages .venv-gpu
    timeout 180 .venv-gpu/bin/python -m pip install --quiet --disable-pip-version-check -e .
    PY="$REPO/.venv-gpu/bin/python"
    cuda_rc=0
    CUDA_FACTS="$("$PY" -c "$PROBE" 2>&1)" || cuda_rc=$?
fi

# No GPU run without a working GPU: stop here, before anything else.
if [ "$DRY_RUN" = 0 ] && [ "$cuda_rc" != 0 ]; then
    {
        echo "ERROR: CUDA is not available: make test-gpu (benchmarks/gpu.sh) needs an NVIDIA GPU"
        echo "       that torch can use; nothing was run."
        echo "       python: $PY"
        echo "       ${CUDA_FACTS//$'\n'/$'\n'       }"
        echo "       For a CPU dry run of this script: bash benchmarks/gpu.sh --dry-run"
        echo "       (or make test-gpu-dry)."
    } >&2
    exit 2
fi
if [ "$DRY_RUN" = 1 ]; then
    DEVICE=cpu
    MODE=dry-run
else
    DEVICE=cuda
    MODE=gpu
fi

# ----------------------------------------------------------------------------- set-up

OUT_DIR="${OUT_DIR:-${OUT:-bench_out}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
LOG="$OUT_DIR/gpu.log"
rm -f "$OUT_DIR"/gpu_summary.json "$OUT_DIR"/bench.json "$OUT_DIR"/bench_epoch.json \
    "$OUT_DIR"/pytest.xml "$OUT_DIR"/lessons.xml
# Everything from here on goes to the terminal and to the log; at exit, wait for tee to
# write the last lines.
exec > >(tee "$LOG") 2>&1
TEE_PID=$!
trap 'exec >&- 2>&-; wait "$TEE_PID" 2>/dev/null || true' EXIT

# Wall-clock time in microseconds (bash 5's EPOCHREALTIME, else date).
now_us() {
    if [ -n "${EPOCHREALTIME:-}" ]; then
        echo "${EPOCHREALTIME/[.,]/}"
    else
        date +%s%6N
    fi
}
# Microseconds as seconds with one decimal.
secs() { printf '%d.%d' $(($1 / 1000000)) $((($1 % 1000000) / 100000)); }
START_US=$(now_us)
elapsed_s() { echo $((($(now_us) - START_US) / 1000000)); }

# (TOTAL_S + the 10 s that `timeout` gives a part to stop + the summary stay under 9 minutes)
TOTAL_S="${TOTAL_S:-515}"
TESTS_S="${TESTS_S:-180}"
LESSONS_S="${LESSONS_S:-110}"
BENCH_S="${BENCH_S:-70}"
EPOCH_S="${EPOCH_S:-145}"
DRY_LESSONS="${DRY_LESSONS:-2}"
DRY_TESTS="${DRY_TESTS:-tests/test_gpu_script.py tests/test_models.py tests/test_metrics.py}"
# the same flags as NBVAL in the Makefile (make test-gpu passes its value)
NBVAL_FLAGS="${NBVAL_FLAGS:---nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg}"
WHEELS_DIR="${WHEELS_DIR:-.whl}"

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# tells tests/test_gpu_script.py not to start a dry run of this script inside this one
export EBM_GPU_SH=1
# MNIST from ../shared/data beside the repository when it is there (as .ci/run does), unless
# PATH_DATASETS is set already; else the package's shipped sample is used
if [ -z "${PATH_DATASETS:-}" ] && [ -d ../shared/data ]; then
    PATH_DATASETS="$(cd ../shared/data && pwd)"
    export PATH_DATASETS
fi

echo "== benchmarks/gpu.sh, $MODE mode, $(date -u '+%Y-%m-%d %H:%M:%S UTC') on ${HOSTNAME:-?}"
echo "repository: $REPO ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout'))"
echo "python: $PY"
echo "$CUDA_FACTS"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L || true
else
    echo "nvidia-smi: not found"
fi
if [ "$DRY_RUN" = 1 ]; then
    echo "DRY RUN: all parts on the CPU at smoke-test sizes; nothing here is a GPU result"
fi
echo "device for lessons and benchmarks: $DEVICE"
echo "PATH_DATASETS: ${PATH_DATASETS:-(unset: the shipped MNIST sample)}"
echo "output: $OUT_DIR"
echo "budgets, s: total $TOTAL_S; tests $TESTS_S, lessons $LESSONS_S, bench $BENCH_S, epoch $EPOCH_S"
echo "CPU cores: $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo "?"); parts: $PARTS"

# ----------------------------------------------------------------------------- modules

# Which of the given modules this Python cannot import (space-separated, empty if none).
missing_modules() {
    "$PY" - "$@" <<'EOF'
import importlib.util
import sys

print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
EOF
}
# what parts 1 and 2 import (besides torch); a part whose modules are missing FAILs at once
TEST_MODULES="pytest hypothesis yaml"
LESSON_MODULES="pytest nbval ipykernel jupyter_client nbformat ipywidgets matplotlib"
read -ra NEEDED <<<"$TEST_MODULES $LESSON_MODULES"

MISSING="$(missing_modules "${NEEDED[@]}")"
if [ -n "$MISSING" ]; then
    echo "== python lacks: $MISSING"
    SITE="${TMPDIR:-/tmp}/ebm-gpu-site"
    mkdir -p "$SITE"
    if compgen -G "$WHEELS_DIR/*.whl" >/dev/null; then
        # install only the wheels whose distribution is not installed already (two versions of
        # one package would shadow the system's), offline
        mapfile -t WHEELS < <("$PY" - "$WHEELS_DIR" <<'EOF'
import importlib.metadata as md
import pathlib
import re
import sys

for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    name = wheel.name.split("-")[0]
    try:
        md.distribution(re.sub(r"[-_.]+", "-", name))
    except md.PackageNotFoundError:
        print(wheel)
EOF
        )
        echo "installing ${#WHEELS[@]} wheels from $WHEELS_DIR into $SITE (offline)"
        if [ "${#WHEELS[@]}" -gt 0 ]; then
            timeout 120 "$PY" -m pip install --quiet --disable-pip-version-check --no-index \
                --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${WHEELS[@]}" ||
                echo "WARNING: installing the wheels failed"
        fi
    else
        echo "no wheels in $WHEELS_DIR/: trying pip (briefly; the machine may be offline)"
        read -ra PACKAGES <<<"${MISSING//yaml/pyyaml}"  # the one module named unlike its package
        timeout 90 "$PY" -m pip install --quiet --disable-pip-version-check --retries 0 \
            --timeout 10 --target "$SITE" "${PACKAGES[@]}" ||
            echo "WARNING: pip could not install them (no internet?); run make gpu-wheels where" \
                "there is internet and bring .whl/ along"
    fi
    export PYTHONPATH="$PYTHONPATH:$SITE"
    MISSING="$(missing_modules "${NEEDED[@]}")"
    echo "still missing: ${MISSING:-nothing}"
fi

# ----------------------------------------------------------------------------- the parts

declare -A BUDGET=([tests]=$TESTS_S [lessons]=$LESSONS_S [bench]=$BENCH_S [epoch]=$EPOCH_S)
NAMES=()
STATUSES=()
SECONDS_TAKEN=()
LIMITS=()
COMMANDS=()

selected() { case ",$PARTS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# record NAME STATUS SECONDS LIMIT COMMAND
record() {
    NAMES+=("$1")
    STATUSES+=("$2")
    SECONDS_TAKEN+=("$3")
    LIMITS+=("$4")
    COMMANDS+=("$5")
}

# The `timeout` of part NAME: its budget, plus what earlier parts left unused (what is left of
# TOTAL_S beyond the budgets of the selected parts after it), never more than is left.
part_limit() {
    local name=$1 later=0 after=0 p
    for p in "${ALL_PARTS[@]}"; do
        if [ "$after" = 1 ] && selected "$p"; then
            later=$((later + BUDGET[$p]))
        fi
        [ "$p" = "$name" ] && after=1
    done
    local left=$((TOTAL_S - $(elapsed_s)))
    [ "$left" -gt 0 ] || left=0
    local limit=$((left - later > BUDGET[$name] ? left - later : BUDGET[$name]))
    echo $((limit < left ? limit : left))
}

# run_part NAME NEEDED_MODULES COMMAND...: runs COMMAND under `timeout` (part_limit) and
# records PASS, FAIL or TIMEOUT, its wall time and its limit.
run_part() {
    local name=$1 needs=$2
    shift 2
    local number=$((${#NAMES[@]} + 1))
    local cmd
    cmd="$(printf "%q " "$@")"
    cmd="${cmd% }"
    echo
    echo "== part $number/4: $name"
    if ! selected "$name"; then
        echo "SKIP (not in --parts $PARTS)"
        record "$name" SKIP 0.0 0 "$cmd"
        return
    fi
    local lacking needs_list
    read -ra needs_list <<<"$needs"
    lacking="$(missing_modules "${needs_list[@]}")"
    if [ -n "$lacking" ]; then
        echo "FAIL: python ($PY) cannot import: $lacking (WHEELS_DIR, in --help, says what to do)"
        record "$name" FAIL 0.0 0 "$cmd"
        return
    fi
    local limit
    limit=$(part_limit "$name")
    if [ "$limit" -lt 5 ]; then
        echo "TIMEOUT: only ${limit}s left of TOTAL_S=$TOTAL_S: not started"
        record "$name" TIMEOUT 0.0 "$limit" "$cmd"
        return
    fi
    echo "\$ $cmd"
    echo "(time limit ${limit}s; budget ${BUDGET[$name]}s)"
    local t0 rc=0 status took
    t0=$(now_us)
    # in its own process group, which `timeout` kills whole (pytest's kernels, bench's children)
    timeout --kill-after=10 "$limit" "$@" || rc=$?
    took=$(secs $(($(now_us) - t0)))
    case $rc in
        0) status=PASS ;;
        124 | 137) status=TIMEOUT ;;
        *) status=FAIL ;;
    esac
    echo "== part $number/4: $name: $status in ${took}s (exit status $rc, limit ${limit}s)"
    record "$name" "$status" "$took" "$limit" "$cmd"
}

# 1. the test suite, with the repository's pytest configuration (testpaths = tests). Serially
# it takes several minutes, so where pytest-xdist is installed the test files are spread over
# TEST_WORKERS processes (one file per process at a time: module fixtures run once).
TEST_ARGS=()
if [ "$DRY_RUN" = 1 ]; then
    # shellcheck disable=SC2206  # a list of paths, split on purpose
    TEST_ARGS=(-m "not slow" $DRY_TESTS)
else
    TEST_ARGS=(--durations=15)
fi
CORES=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
WORKERS="${TEST_WORKERS:-$((CORES / 2 > 8 ? 8 : CORES / 2))}"
TEST_ENV=()
if [ "$WORKERS" -ge 2 ] && [ -z "$(missing_modules xdist)" ]; then
    TEST_ARGS+=(-n "$WORKERS" --dist loadfile)
    # two threads per process, not all cores each: oversubscribed OpenMP barriers spin
    TEST_ENV=(OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}")
fi
# shellcheck disable=SC2086  # PYTEST_ARGS: extra words, split on purpose
run_part tests "$TEST_MODULES" \
    env "${TEST_ENV[@]}" "$PY" -m pytest -p no:cacheprovider --junitxml="$OUT_DIR/pytest.xml" \
    "${TEST_ARGS[@]}" ${PYTEST_ARGS:-}

# 2. the lessons under nbval, quick mode, on the device
LESSONS=(notebooks/*.ipynb)
if [ "$DRY_RUN" = 1 ] && [ -n "${DRY_NOTEBOOKS:-}" ]; then
    # shellcheck disable=SC2206  # a list of paths, split on purpose
    LESSONS=($DRY_NOTEBOOKS)
elif [ "$DRY_RUN" = 1 ]; then
    LESSONS=("${LESSONS[@]:0:$DRY_LESSONS}")
fi
# shellcheck disable=SC2086  # NBVAL_FLAGS: several flags, split on purpose
run_part lessons "$LESSON_MODULES" \
    env EBM_COURSE_QUICK=1 EBM_COURSE_DEVICE="$DEVICE" \
    "$PY" -m pytest -p no:cacheprovider $NBVAL_FLAGS --junitxml="$OUT_DIR/lessons.xml" \
    "${LESSONS[@]}"

# 3. the side-by-side table; 4. one epoch of each implementation (bench.py --epoch prints the
# table too: from 1 round there, as part 3 has the medians)
if [ "$DRY_RUN" = 1 ]; then
    BENCH_SIZE=(--quick --rounds 1)
    EPOCH_SIZE=(--quick --rounds 1 --epoch --epoch-iters 2)
else
    BENCH_SIZE=()
    EPOCH_SIZE=(--rounds 1 --epoch)
fi
# shellcheck disable=SC2086  # BENCH_ARGS: extra words, split on purpose
run_part bench "numpy torch" \
    "$PY" benchmarks/bench.py --device "$DEVICE" "${BENCH_SIZE[@]}" \
    --json "$OUT_DIR/bench.json" ${BENCH_ARGS:-}
# shellcheck disable=SC2086
run_part epoch "numpy torch" \
    "$PY" benchmarks/bench.py --device "$DEVICE" "${EPOCH_SIZE[@]}" \
    --json "$OUT_DIR/bench_epoch.json" ${BENCH_ARGS:-}

# ----------------------------------------------------------------------------- summary

TOTAL_TOOK=$(secs $(($(now_us) - START_US)))
OVERALL=PASS
for s in "${STATUSES[@]}"; do
    case $s in PASS | SKIP) ;; *) OVERALL=FAIL ;; esac
done

echo
echo "== summary ($MODE, device $DEVICE)"
echo
printf '| %-2s | %-8s | %-7s | %9s | %8s |\n' "#" part status seconds "limit, s"
printf '|----|----------|---------|-----------|----------|\n'
for i in "${!NAMES[@]}"; do
    printf '| %-2s | %-8s | %-7s | %9s | %8s |\n' \
        $((i + 1)) "${NAMES[$i]}" "${STATUSES[$i]}" "${SECONDS_TAKEN[$i]}" "${LIMITS[$i]}"
done
printf '| %-2s | %-8s | %-7s | %9s | %8s |\n' "" total "$OVERALL" "$TOTAL_TOOK" "$TOTAL_S"
echo

# The JSON summary (and the epoch times, when part 4 wrote them).
SUMMARY_MODE=$MODE SUMMARY_DEVICE=$DEVICE SUMMARY_PYTHON=$PY SUMMARY_STATUS=$OVERALL \
    SUMMARY_TOTAL=$TOTAL_TOOK SUMMARY_BUDGETS="$TOTAL_S $TESTS_S $LESSONS_S $BENCH_S $EPOCH_S" \
    "$PY" - "$OUT_DIR" "${#NAMES[@]}" \
    "${NAMES[@]}" "${STATUSES[@]}" "${SECONDS_TAKEN[@]}" "${LIMITS[@]}" "${COMMANDS[@]}" \
    <<'EOF'
import json
import os
import sys
from pathlib import Path

out, n = Path(sys.argv[1]), int(sys.argv[2])
columns = [sys.argv[3 + k * n : 3 + (k + 1) * n] for k in range(5)]
total_budget, *budgets = map(int, os.environ["SUMMARY_BUDGETS"].split())
parts = [
    {"part": i + 1, "name": name, "status": status, "seconds": float(took),
     "budget_s": budget, "limit_s": int(limit), "command": command}
    for i, (name, status, took, limit, command, budget)
    in enumerate(zip(*columns, budgets, strict=True))
]
summary = {
    "mode": os.environ["SUMMARY_MODE"],
    "device": os.environ["SUMMARY_DEVICE"],
    "python": os.environ["SUMMARY_PYTHON"],
    "status": os.environ["SUMMARY_STATUS"],
    "total_seconds": float(os.environ["SUMMARY_TOTAL"]),
    "total_budget_s": total_budget,
    "parts": parts,
}
epoch_json = out / "bench_epoch.json"
if epoch_json.is_file():
    epoch = json.loads(epoch_json.read_text())["times_s"]["epoch"] or {}
    summary["epoch_seconds"] = epoch
    print("one epoch, s: " + ", ".join(f"{k} {v:.1f}" for k, v in epoch.items()))
(out / "gpu_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(f"wrote {out / 'gpu_summary.json'} and the log {out / 'gpu.log'}")
EOF

if [ "$OVERALL" != PASS ]; then
    echo "gpu.sh: FAILED (a part failed or ran out of time; see above)" >&2
    exit 1
fi
echo "gpu.sh: all parts passed in ${TOTAL_TOOK}s"
