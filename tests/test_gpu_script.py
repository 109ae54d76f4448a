"""benchmarks/gpu.sh (``make test-gpu``): without CUDA it stops at once with a message that
names CUDA, and its CPU dry run (``--dry-run``) runs the four parts and passes them all.

The GPU run itself needs a GPU; these tests check the script's plumbing. The dry run takes
about 4 minutes on a busy 2-core CPU, nearly all of it in its two ``bench.py --quick`` runs: it
is marked ``slow`` (deselect with ``-m "not slow"``), and it skips itself inside a run of gpu.sh
(whose part 1 runs this file)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu.sh"
PARTS = ["tests", "lessons", "bench", "epoch"]


def script_env(out_dir: Path, **extra: str) -> dict[str, str]:
    """This interpreter for the script, its output in ``out_dir``, CUDA hidden."""
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "EBM_COURSE_DEVICE")}
    env.update(
        PYTHON=sys.executable,
        OUT_DIR=str(out_dir),
        CUDA_VISIBLE_DEVICES="",  # also on a GPU machine: the "no CUDA" case
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
        **extra,
    )
    return env


def test_without_cuda_it_stops_at_once_naming_cuda(tmp_path):
    out = tmp_path / "out"
    started = time.perf_counter()
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=script_env(out), capture_output=True, text=True, timeout=120
    )
    took = time.perf_counter() - started
    assert done.returncode != 0
    assert "CUDA is not available" in done.stderr
    assert "--dry-run" in done.stderr  # says how to run it without a GPU
    assert not out.exists()  # nothing else was done
    # one Python start (import torch); a few seconds, more on a busy machine
    assert took < 60, f"the CUDA check took {took:.0f} s"


def test_unknown_arguments_are_refused(tmp_path):
    for args in (["--dry-rnu"], ["--parts", "tests,bench,nope"]):
        done = subprocess.run(
            ["bash", str(SCRIPT), *args],
            env=script_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2
        assert "unknown" in done.stderr


def test_the_lessons_part_uses_the_makefiles_nbval_flags():
    makefile = (REPO / "Makefile").read_text()
    flags = re.search(r"^NBVAL := (.+)$", makefile, re.MULTILINE).group(1).strip()
    assert f'NBVAL_FLAGS="${{NBVAL_FLAGS:-{flags}}}"' in SCRIPT.read_text()


def tiny_notebook(path: Path) -> Path:
    """One cell whose checked output shows what the lessons part passes to the kernel."""
    source = (
        "# NBVAL_CHECK_OUTPUT\n"
        "import os\n"
        "import ebm_course\n"
        'print(os.environ["EBM_COURSE_QUICK"], os.environ["EBM_COURSE_DEVICE"], '
        "ebm_course.device())"
    )
    cell = {
        "cell_type": "code",
        "execution_count": 1,
        "metadata": {},
        "source": source,
        "outputs": [{"name": "stdout", "output_type": "stream", "text": "1 cpu cpu\n"}],
    }
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook = {
        "cells": [cell],
        "metadata": {"kernelspec": kernel},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook))
    return path


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get("EBM_GPU_SH")), reason="inside a run of gpu.sh")
def test_dry_run_runs_the_four_parts_on_the_cpu_and_passes(tmp_path):
    out = tmp_path / "out"
    # the smallest parts: one fast test, a one-cell notebook, bench.py --quick (two runs)
    notebook = tiny_notebook(tmp_path / "tiny.ipynb")
    fast_test = "tests/test_gpu_script.py::test_the_lessons_part_uses_the_makefiles_nbval_flags"
    env = script_env(out, DRY_TESTS=fast_test, DRY_NOTEBOOKS=str(notebook))
    done = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = json.loads((out / "gpu_summary.json").read_text())
    assert summary["mode"] == "dry-run"
    assert summary["device"] == "cpu"
    assert summary["status"] == "PASS"
    assert [p["name"] for p in summary["parts"]] == PARTS
    assert [p["status"] for p in summary["parts"]] == ["PASS"] * 4
    assert all(0 < p["seconds"] <= p["limit_s"] + 10 for p in summary["parts"])
    assert [p["budget_s"] for p in summary["parts"]] == [180, 110, 70, 145]
    assert summary["total_seconds"] <= summary["total_budget_s"] + 15
    # the epoch part's times reached the summary; the log holds everything printed
    assert set(summary["epoch_seconds"]) == {"reference", "ours", "ours_fp32"}
    log = (out / "gpu.log").read_text()
    assert "DRY RUN" in log
    assert "| ratio ours/reference |" in log  # bench.py's table
    assert "one epoch, s (2 iterations of batch 16)" in log
    for number, name in enumerate(PARTS, start=1):
        assert re.search(rf"^\| {number}\s+\| {name}\s+\| PASS\s+\|", log, re.MULTILINE)
    for name in ("bench.json", "bench_epoch.json", "pytest.xml", "lessons.xml"):
        assert (out / name).is_file(), name
