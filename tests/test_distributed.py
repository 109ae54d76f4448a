import os
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_gloo_ranks_end_with_identical_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*cmd, str(WORKER), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for name, weight in ranks[0]["model"].items():
        assert torch.equal(weight, ranks[1]["model"][name]), name
    torch.manual_seed(100)  # rank 0's initial weights: training must have moved them
    from ebm_course.models import MLPEnergy

    initial = MLPEnergy(hidden=16, depth=2).state_dict()
    assert any(not torch.equal(initial[k], v) for k, v in ranks[0]["model"].items())
    timings = ("seconds",)  # everything but wall-clock times is the same on both ranks
    for key, values in ranks[0]["history"].items():
        assert key in timings or values == ranks[1]["history"][key], key
    assert len(ranks[0]["history"]["epoch"]) == 2
    assert (tmp_path / "ckpt" / "last.pt").is_file()  # written by rank 0
