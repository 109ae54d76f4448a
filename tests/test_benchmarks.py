"""Smoke test of benchmarks/layers.py: it runs, and its FLOP counts agree with PyTorch's."""

import importlib.util
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from ebm_course.models import CNNEnergy

LAYERS = Path(__file__).resolve().parents[1] / "benchmarks" / "layers.py"


def load_layers_module():
    spec = importlib.util.spec_from_file_location("bench_layers", LAYERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
