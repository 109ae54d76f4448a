"""Golden runs: the package's numbers, bit for bit, pinned before a refactor.

``tests/golden/run_golden.py`` runs small fixed-seed pieces of the package on the CPU, in a
fresh process with two threads, and prints SHA-256 digests of what they produced (weights,
samples, replay buffer, checkpoints) and the exact history floats; this test compares them
with ``tests/golden/golden.json``. A refactor that is meant to change nothing must leave every
case identical; a change meant to alter the numbers regenerates the file on purpose
(``EBM_UPDATE_GOLDEN=1 pytest tests/test_golden.py``) and says why in its commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent / "golden"
GOLDEN = HERE / "golden.json"
UPDATE = os.environ.get("EBM_UPDATE_GOLDEN", "") not in ("", "0")
CASES = ["cnn_fit", "toy_fit", "langevin", "fit_jem", "fit_objective"]


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, str(HERE / "run_golden.py")], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout)
    if UPDATE:
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    return got


@pytest.mark.parametrize("case", CASES)
def test_golden_run_is_bit_identical(results, case):
    expected = json.loads(GOLDEN.read_text())[case]
    assert results[case] == expected, (
        f"{case} no longer gives the pinned numbers; if that is intended, regenerate "
        "tests/golden/golden.json with EBM_UPDATE_GOLDEN=1 and say why in the commit"
    )


def test_the_forced_rollback_happened(results):
    events = results["cnn_fit"]["first"]["events"]
    assert [(e["epoch"], e["step"], e["reason"]) for e in events] == [
        (2, 2, "forced by the golden test")
    ]
