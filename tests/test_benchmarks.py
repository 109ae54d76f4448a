"""Smoke tests of benchmarks/: layers.py runs and its FLOP counts agree with PyTorch's;
bench.py --quick runs every measurement and writes a complete table and JSON file."""

import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from ebm_course.models import CNNEnergy

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
LAYERS = BENCHMARKS / "layers.py"
BENCH = BENCHMARKS / "bench.py"


def load_module(name, path, monkeypatch=None):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    if monkeypatch is not None:  # dataclasses look their module up in sys.modules
        monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def load_layers_module():
    return load_module("bench_layers", LAYERS)


def test_layers_table_counts_the_flops_pytorch_counts(capsys, monkeypatch):
    layers = load_layers_module()
    monkeypatch.setattr(sys, "argv", ["layers.py", "--batch", "4", "--rounds", "1"])
    layers.main()
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| conv")]
    assert len(rows) == 4
    table_mflop = sum(float(row.split("|")[2]) for row in rows)
    model = CNNEnergy().eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(4, 1, 28, 28))
    conv_flops = counter.get_flop_counts()["Global"][torch.ops.aten.convolution]
    assert abs(table_mflop - conv_flops / 1e6) <= 0.2  # four rows, each rounded to 0.1 MFLOP


BENCH_ROWS = (  # the first words of each row of bench.py's table, in order
    "training iteration, s (batch 16,",
    "training throughput, GFLOP/s",
    "floor: network only,",
    "floor / iteration",
    "generation, image-steps/s (16 x 64 steps",
    "generation, GFLOP/s",
    "peak extra memory, training iteration",
    "peak extra memory, generation",
    "first samples, s (fresh process, 16 x 64 steps",
    "one epoch, s (2 iterations of batch 16)",
)
BENCH_JSON_KEYS = {
    "machine",
    "config",
    "flops",
    "matmul_ceiling_gflops",
    "memory_method",
    "times_s",
    "peak_memory_bytes",
    "speedup",
    "table_markdown",
    "elapsed_s",
}


def test_bench_quick_measures_every_row(tmp_path, capsys, monkeypatch):
    """bench.py --quick with one timed round and a 2-iteration epoch: about 40 s on 2 CPUs."""
    bench = load_module("bench", BENCH, monkeypatch)
    out = tmp_path / "bench.json"
    argv = ["--quick", "--rounds", "1", "--threads", "1", "--epoch", "--epoch-iters", "2"]
    threads = torch.get_num_threads()
    try:
        result = bench.main([*argv, "--json", str(out)])
    finally:
        torch.set_num_threads(threads)  # --threads sets it for the whole process
    printed = capsys.readouterr().out

    # the table: the expected rows, each with a cell per implementation and a ratio column
    table = result["table_markdown"]
    assert table in printed
    cells = [row.removeprefix("| ").removesuffix(" |").split(" | ") for row in table.splitlines()]
    assert cells[0][1:4] == ["reference", "ours (fast default)", "ours (fp32)"]
    rows = cells[2:]
    assert all(len(row) == 5 for row in rows)
    assert all(row[0].startswith(prefix) for row, prefix in zip(rows, BENCH_ROWS, strict=True))
    # rates and shares have no ratio; every ratio given is a finite positive number
    assert [bool(row[4]) for row in rows] == [1, 0, 1, 0, 1, 0, 1, 1, 1, 1]
    ratios = [float(x) for row in rows for x in re.findall(r"\d+\.\d+", row[4])]
    assert len(ratios) == 2 * 6 + 1  # fast and fp32 in each ratio but the floor's
    assert all(math.isfinite(r) and r > 0 for r in ratios)

    # the JSON file: every key, one timing per round, positive numbers
    saved = json.loads(out.read_text())
    assert set(saved) == BENCH_JSON_KEYS
    assert saved["table_markdown"] == table
    train = saved["times_s"]["training_iteration"]
    assert set(train) == {"reference", "ours", "ours_fp32", "floor_fp32", "floor_fast"}
    assert all(len(times) == 1 and times[0] > 0 for times in train.values())
    assert all(seconds > 0 for seconds in saved["times_s"]["epoch"].values())
    speedups = saved["speedup"].values()
    assert len(speedups) == 5 and all(math.isfinite(s) and s > 0 for s in speedups)
    for peaks in saved["peak_memory_bytes"].values():
        assert set(peaks) == {"reference", "ours", "ours_fp32"}
        assert all(peak > 0 for peak in peaks.values())
