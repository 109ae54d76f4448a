"""Side-by-side benchmark: the original tutorial's algorithm vs ``ebm_course``.

One process, one run, same data, batch, MCMC steps, thread count and device for both. The
reference is ``benchmarks/reference_tutorial.py`` (a plain-PyTorch copy of the tutorial's
``CNNModel``, list-based ``Sampler`` and ``training_step``); "ours" is ``ebm_course`` with its
default speed switches ("fast default") and with all of them off ("fp32": ``precision="fp32"``,
``channels_last=False``), so that the table separates the algorithmic part of the difference
from the bf16 / memory-layout part.

Timings are medians over repeated runs after warm-up, with the implementations INTERLEAVED
(one run of each per round, the order reversed every other round): the machines this runs on
drift in speed by tens of per cent over seconds, and interleaving exposes every implementation
to the same drift. Ratios are medians of the per-round ratios.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench.py            # about 2-4 minutes on a 2-core CPU
    .venv/bin/python benchmarks/bench.py --quick    # smoke test, under a minute
    .venv/bin/python benchmarks/bench.py --device cuda --epoch --json out/gpu.json

See ``benchmarks/README.md`` for what each number means.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ebm_course
from ebm_course.data import load_mnist, to_tensors
from ebm_course.models import CNNEnergy
from ebm_course.sampling import ReplayBuffer, autocast_dtype, langevin, score_gradient
from ebm_course.training import TrainConfig, training_step

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

BATCH = 128  # the tutorial's batch size
MCMC_STEPS = 60  # Langevin steps per training iteration (the tutorial's)
GEN_IMAGES, GEN_STEPS = 64, 256  # generation from uniform noise
FIRST_IMAGES, FIRST_STEPS = 16, 256  # "first samples" in a fresh process
EPOCH_ITERS = 468  # 60,000 // 128: one tutorial epoch (drop_last)
SHAPE = (1, 28, 28)
IMPLS = ("reference", "ours", "ours_fp32")
COLUMNS = {"reference": "reference", "ours": "ours (fast default)", "ours_fp32": "ours (fp32)"}


def _load_reference():
    spec = importlib.util.spec_from_file_location(
        "reference_tutorial", HERE / "reference_tutorial.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _load_reference()


# ----------------------------------------------------------------------------- helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def interleaved(
    tasks: dict[str, Callable[[], Any]], warmup: int, rounds: int, device: torch.device
) -> dict[str, list[float]]:
    """Run every task once per round (order reversed every other round); keep the timed rounds."""
    names = list(tasks)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(warmup + rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            seconds = timed(tasks[name], device)
            if r >= warmup:
                times[name].append(seconds)
    return times


def paired_speedup(ref_times: list[float], our_times: list[float]) -> float:
    """Median over rounds of reference time / our time (> 1: ours is faster)."""
    return statistics.median(r / o for r, o in zip(ref_times, our_times, strict=True))


def _cpu_peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes of CPU tensor memory allocated during ``fn`` and live at the same time.

    From the memory events of ``torch.profiler`` (``profile_memory=True``): the running sum of
    the sizes of allocations (+) and frees (-) made inside the call. Frees of blocks that
    existed before the call are not seen by the profiler, so this is the peak of new memory.
    """
    from torch.profiler import ProfilerActivity, profile

    with tempfile.TemporaryDirectory() as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                fn()
            path = Path(tmp) / "trace.json"
            prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text())["traceEvents"]
    memory = [
        e
        for e in events
        if e.get("name") == "[memory]" and e.get("args", {}).get("Device Type", 0) == 0
    ]
    memory.sort(key=lambda e: (e["ts"], e["args"].get("Ev Idx", 0)))
    live = peak = 0
    for event in memory:
        live += int(event["args"]["Bytes"])
        peak = max(peak, live)
    return peak


def peak_memory(fn: Callable[[], Any], device: torch.device) -> int:
    """Peak extra memory on ``device`` during one call of ``fn`` (bytes)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    return _cpu_peak_bytes(fn)


MEMORY_METHOD = {
    "cuda": "torch.cuda.max_memory_allocated() minus memory_allocated() before the call "
    "(peak stats reset before each call); GPU memory only",
    "cpu": "torch.profiler (profile_memory=True) memory events of one call: peak of the running "
    "sum of bytes allocated (+) and freed (-) inside the call; CPU tensor memory only",
}


def count_flops() -> dict[str, float]:
    """FLOPs (2 per multiply-add, convolutions and matmuls only) via FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    model = CNNEnergy()
    x = torch.zeros(1, *SHAPE, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        model(x)
    forward = counter.get_total_flops()
    model.requires_grad_(False)  # backward to the input only, as in an MCMC step
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    mcmc_step = counter.get_total_flops()
    model.requires_grad_(True)
    batch = torch.zeros(2 * BATCH, *SHAPE)
    with FlopCounterMode(display=False) as counter:
        score = model(batch)
        (0.1 * score.pow(2).mean() + score.mean()).backward()
    update = counter.get_total_flops()  # forward + full backward on real + fake
    return {
        "macs_per_image_forward": forward / 2,
        "flops_per_image_mcmc_step": mcmc_step,
        "flops_parameter_update": update,
        "flops_per_training_iteration": MCMC_STEPS * BATCH * mcmc_step + update,
        "flops_per_generation": GEN_STEPS * GEN_IMAGES * mcmc_step,
    }


def matmul_ceiling(device: torch.device, size: int = 2048) -> dict[str, float]:
    """GFLOP/s of a large square matmul in fp32 and bf16: what this device's cores can do
    at best, to bound the speed-up any implementation of the (much smaller) CNN could get."""
    rates = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        best = min(timed(lambda a=a, b=b: a @ b, device) for _ in range(5))
        rates[name] = 2 * size**3 / best / 1e9
    return rates


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts(device: torch.device) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "auto_precision": str(autocast_dtype("auto", device) or "fp32 (no native bf16)"),
    }
    if device.type == "cuda":
        facts["cuda"] = torch.version.cuda
        facts["cudnn_benchmark"] = torch.backends.cudnn.benchmark
        facts["cudnn_deterministic"] = torch.backends.cudnn.deterministic
    if hasattr(os, "getloadavg"):
        facts["load_average_start"] = [round(v, 2) for v in os.getloadavg()]
    return facts


def load_images() -> tuple[torch.Tensor, str]:
    """MNIST train in [-1, 1] (``PATH_DATASETS``), else the shipped 2,000-image sample."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_mnist(train=True, download=False)
    images, _ = to_tensors(dataset)
    fell_back = any("shipped" in str(w.message) for w in caught)
    if fell_back:
        source = f"shipped MNIST sample ({len(images)} images; PATH_DATASETS unset or incomplete)"
    else:
        source = (
            f"MNIST train from {os.environ.get('PATH_DATASETS', 'data')} ({len(images)} images)"
        )
    return images, source


# ----------------------------------------------------------------------------- the contenders


class Contenders:
    """Three identical CNNs (same initial weights), each with its optimiser and replay buffer."""

    def __init__(self, images: torch.Tensor, device: torch.device, seed: int = 0) -> None:
        torch.manual_seed(seed)
        np.random.seed(seed)  # noqa: NPY002 (the reference draws from NumPy's global RNG)
        random.seed(seed)
        self.device = device
        self.images = images.to(device)
        self.index_gen = torch.Generator().manual_seed(seed)

        self.ref_model = ref.CNNModel().to(device)
        weights = self.ref_model.state_dict()
        self.ref_optimizer = ref.configure_optimizer(self.ref_model)
        self.ref_sampler = ref.Sampler(self.ref_model, SHAPE, BATCH, device=device)

        self.config = TrainConfig()
        plain_off = {
            k: False for k in ("compile", "cuda_graph") if hasattr(self.config, k)
        }  # the other speed switches, off in the plain row
        self.config_fp32 = TrainConfig(precision="fp32", channels_last=False, **plain_off)
        self.models: dict[str, torch.nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.buffers: dict[str, ReplayBuffer] = {}
        self.generators: dict[str, torch.Generator] = {}
        for i, name in enumerate(("ours", "ours_fp32")):
            model = CNNEnergy().to(device)
            model.load_state_dict(weights)  # same keys: cnn_layers.*
            cfg = self.config if name == "ours" else self.config_fp32
            self.models[name] = model
            self.optimizers[name] = torch.optim.Adam(
                model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)
            )
            self.generators[name] = torch.Generator(device=device).manual_seed(seed + 1 + i)
            self.buffers[name] = ReplayBuffer(
                SHAPE, cfg.buffer_capacity, cfg.reinit_prob, cfg.value_range, device=device
            )
        # a separate copy for the network-only floor, so that it does not train
        self.floor_model = CNNEnergy().to(device)
        self.floor_model.load_state_dict(weights)
        self.floor_model.eval()

    # one training iteration of each ------------------------------------------------------
    def batch(self) -> torch.Tensor:
        index = torch.randint(len(self.images), (BATCH,), generator=self.index_gen)
        return self.images[index.to(self.device)]  # a fresh tensor (the reference edits it)

    def train_ref(self, real: torch.Tensor | None = None) -> dict[str, float]:
        real = self.batch() if real is None else real
        return ref.training_step(self.ref_model, self.ref_sampler, self.ref_optimizer, real)

    def train_ours(self, name: str, real: torch.Tensor | None = None) -> dict[str, float]:
        real = self.batch() if real is None else real
        cfg = self.config if name == "ours" else self.config_fp32
        return training_step(
            self.models[name],
            self.optimizers[name],
            self.buffers[name],
            real,
            cfg,
            self.generators[name],
        )

    def train(self, name: str, real: torch.Tensor | None = None) -> dict[str, float]:
        return self.train_ref(real) if name == "reference" else self.train_ours(name, real)

    # generation from noise ---------------------------------------------------------------
    def noise(self, n: int) -> torch.Tensor:
        return torch.rand((n, *SHAPE), device=self.device) * 2 - 1

    def generate(self, name: str) -> torch.Tensor:
        x = self.noise(GEN_IMAGES)
        if name == "reference":
            return ref.Sampler.generate_samples(self.ref_model, x, steps=GEN_STEPS, step_size=10)
        if name == "ours":
            return langevin(self.models[name], x, steps=GEN_STEPS)
        return langevin(
            self.models[name], x, steps=GEN_STEPS, precision="fp32", channels_last=False
        )

    # the network alone: MCMC_STEPS x (forward + grad wrt the input), batch 128 -------------
    def floor(self, fast: bool) -> None:
        dtype = autocast_dtype(self.config.precision, self.device) if fast else None
        layout = torch.channels_last if fast and self.config.channels_last else None
        x = self.noise(BATCH)
        if layout is not None:
            x = x.contiguous(memory_format=layout)
        x.requires_grad_(True)
        for _ in range(MCMC_STEPS):
            score_gradient(self.floor_model, x, dtype)


# ----------------------------------------------------------------------------- measurements


def first_samples_script(name: str, weights: str, threads: int) -> str:
    """The code a fresh ``python -c`` runs: import, build, load weights, 16 x 256 steps on CPU."""
    load = (
        f"model.load_state_dict(torch.load({weights!r}, map_location='cpu', weights_only=True))\n"
    )
    if name == "reference":
        return (
            f"import sys; sys.path.insert(0, {str(HERE)!r})\n"
            "import torch\n"
            f"torch.set_num_threads({threads})\n"
            "import reference_tutorial as ref\n"
            "model = ref.CNNModel()\n"
            f"{load}"
            f"imgs = torch.rand(({FIRST_IMAGES}, 1, 28, 28)) * 2 - 1\n"
            f"out = ref.Sampler.generate_samples(model, imgs, steps={FIRST_STEPS}, step_size=10)\n"
            f"assert out.shape == ({FIRST_IMAGES}, 1, 28, 28)\n"
        )
    extra = ", precision='fp32', channels_last=False" if name == "ours_fp32" else ""
    return (
        "import ebm_course\n"
        "import torch\n"
        f"torch.set_num_threads({threads})\n"
        "model = ebm_course.CNNEnergy()\n"
        f"{load}"
        f"x = torch.rand({FIRST_IMAGES}, 1, 28, 28) * 2 - 1\n"
        f"out = ebm_course.langevin(model, x, steps={FIRST_STEPS}{extra})\n"
        f"assert out.shape == ({FIRST_IMAGES}, 1, 28, 28)\n"
    )


def first_samples(rounds: int, threads: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in IMPLS}
    with tempfile.TemporaryDirectory() as tmp:
        weights = str(Path(tmp) / "cnn.pt")
        torch.save(CNNEnergy().state_dict(), weights)
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        for r in range(rounds):
            for name in IMPLS if r % 2 == 0 else IMPLS[::-1]:
                code = first_samples_script(name, weights, threads)
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-c", code],
                    check=True,
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                times[name].append(time.perf_counter() - start)
    return times


def epoch_times(c: Contenders, iters: int = EPOCH_ITERS) -> dict[str, float]:
    """One tutorial epoch (468 iterations, batch 128) of each, interleaved per iteration.

    The batches are the available images shuffled, repeated as needed (the tutorial's epoch
    is 60,000 images, drop_last). Each iteration of each implementation is timed on its own
    and the times are summed, so all three see the same drift.
    """
    n = len(c.images)
    gen = torch.Generator().manual_seed(123)
    need = iters * BATCH
    order = torch.cat([torch.randperm(n, generator=gen) for _ in range(-(-need // n))])[:need]
    order = order.view(iters, BATCH).to(c.device)
    totals = dict.fromkeys(IMPLS, 0.0)
    for it in range(iters):
        for name in IMPLS if it % 2 == 0 else IMPLS[::-1]:
            index = order[it]
            totals[name] += timed(
                lambda name=name, index=index: c.train(name, c.images[index]), c.device
            )
        if (it + 1) % 100 == 0:
            print(f"#   epoch: {it + 1}/{iters} iterations", flush=True)
    return totals


# ----------------------------------------------------------------------------- report


def fmt_spread(values: list[float], unit: str, digits: int = 3) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f} {unit}"
    return f"{med:.{digits}f} {unit} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: ebm_course.device())")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--epoch", action="store_true", help="also time one 468-iteration epoch")
    # for testing the --epoch path quickly
    parser.add_argument("--epoch-iters", type=int, default=EPOCH_ITERS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="timed rounds (default 9; quick 2)"
    )
    args = parser.parse_args(argv)

    device = torch.device(args.device) if args.device else ebm_course.device()
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch.cuda.is_available() is False")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    warmup = 1 if args.quick else 2
    rounds = args.rounds or (2 if args.quick else 9)
    first_rounds = 1 if args.quick else 3
    started = time.perf_counter()

    images, source = load_images()
    facts = machine_facts(device)
    facts["data"] = source
    print("## Machine")
    for key, value in facts.items():
        print(f"- {key}: {value}")
    flops = count_flops()
    c = Contenders(images, device)
    config = {
        "batch": BATCH,
        "mcmc_steps": MCMC_STEPS,
        "generation": f"{GEN_IMAGES} images x {GEN_STEPS} steps",
        "first_samples": f"{FIRST_IMAGES} images x {FIRST_STEPS} steps, CPU, fresh process",
        "warmup_rounds": warmup,
        "timed_rounds": rounds,
        "ours_config": dataclasses.asdict(c.config),
        "ours_fp32_config": dataclasses.asdict(c.config_fp32),
    }
    print(f"- warm-up rounds: {warmup}, timed rounds: {rounds} (interleaved)", flush=True)

    # 1. training iterations (+ the network-only floors), interleaved
    print("# timing training iterations ...", flush=True)
    train = interleaved(
        {
            "reference": c.train_ref,
            "ours": lambda: c.train_ours("ours"),
            "ours_fp32": lambda: c.train_ours("ours_fp32"),
            "floor_fp32": lambda: c.floor(fast=False),
            "floor_fast": lambda: c.floor(fast=True),
        },
        warmup,
        rounds,
        device,
    )
    # 2. generation from noise, interleaved
    print("# timing generation ...", flush=True)
    gen = interleaved(
        {name: (lambda name=name: c.generate(name)) for name in IMPLS}, warmup, rounds, device
    )
    # 3. peak memory, one call each (after the timing, so buffers are filled)
    print("# measuring peak memory ...", flush=True)
    mem_train = {name: peak_memory(lambda name=name: c.train(name), device) for name in IMPLS}
    mem_gen = {name: peak_memory(lambda name=name: c.generate(name), device) for name in IMPLS}
    # 4. first samples in a fresh process (CPU)
    print("# timing first samples (subprocesses) ...", flush=True)
    first = first_samples(first_rounds, threads)
    # 5. one epoch (GPU script only)
    epoch = None
    if args.epoch:
        print(f"# timing one epoch ({args.epoch_iters} iterations) of each ...", flush=True)
        epoch = epoch_times(c, args.epoch_iters)

    # ------------------------------------------------------------------ table
    it_flops = flops["flops_per_training_iteration"]
    gen_flops = flops["flops_per_generation"]
    img_steps = GEN_IMAGES * GEN_STEPS
    rows: list[tuple[str, dict[str, str], str]] = []

    def ratio_cell(values: dict[str, list[float]], speed: bool = True) -> str:
        fast = paired_speedup(values["reference"], values["ours"])
        plain = paired_speedup(values["reference"], values["ours_fp32"])
        return f"{fast:.2f}x (fp32: {plain:.2f}x)" if speed else ""

    rows.append(
        (
            f"training iteration, s (batch {BATCH}, {MCMC_STEPS} MCMC steps)",
            {n: fmt_spread(train[n], "s") for n in IMPLS},
            ratio_cell(train),
        )
    )
    rows.append(
        (
            "training throughput, GFLOP/s achieved",
            {n: f"{it_flops / statistics.median(train[n]) / 1e9:.1f}" for n in IMPLS},
            "",
        )
    )
    floor = {
        "reference": train["floor_fp32"],
        "ours": train["floor_fast"],
        "ours_fp32": train["floor_fp32"],
    }
    rows.append(
        (
            f"floor: network only, {MCMC_STEPS} x (forward + grad_x), batch {BATCH}, s",
            {n: fmt_spread(floor[n], "s") for n in IMPLS},
            f"{paired_speedup(train['floor_fp32'], train['floor_fast']):.2f}x (fast vs fp32)",
        )
    )
    rows.append(
        (
            "floor / iteration (median of per-round ratios)",
            {n: f"{paired_speedup(floor[n], train[n]):.0%}" for n in IMPLS},  # median floor/iter
            "",
        )
    )
    rows.append(
        (
            f"generation, image-steps/s ({GEN_IMAGES} x {GEN_STEPS} steps from noise)",
            {n: f"{img_steps / statistics.median(gen[n]):,.0f}" for n in IMPLS},
            ratio_cell(gen),
        )
    )
    rows.append(
        (
            "generation, GFLOP/s achieved",
            {n: f"{gen_flops / statistics.median(gen[n]) / 1e9:.1f}" for n in IMPLS},
            "",
        )
    )
    mib = 2.0**20
    for label, mem in (("training iteration", mem_train), ("generation", mem_gen)):
        rows.append(
            (
                f"peak extra memory, {label}, MiB",
                {n: f"{mem[n] / mib:.1f}" for n in IMPLS},
                f"{mem['ours'] / mem['reference']:.2f} (fp32: "
                f"{mem['ours_fp32'] / mem['reference']:.2f}) ours/ref",
            )
        )
    rows.append(
        (
            f"first samples, s (fresh process, {FIRST_IMAGES} x {FIRST_STEPS} steps, CPU)",
            {n: fmt_spread(first[n], "s", 2) for n in IMPLS},
            ratio_cell(first),
        )
    )
    if epoch is not None:
        rows.append(
            (
                f"one epoch, s ({args.epoch_iters} iterations of batch {BATCH})",
                {n: f"{epoch[n]:.1f} s" for n in IMPLS},
                f"{epoch['reference'] / epoch['ours']:.2f}x (fp32: "
                f"{epoch['reference'] / epoch['ours_fp32']:.2f}x)",
            )
        )

    header = "| metric | " + " | ".join(COLUMNS[n] for n in IMPLS) + " | ratio ours/reference |"
    lines = [header, "|---|---|---|---|---|"]
    for metric, cells, ratio in rows:
        lines.append(f"| {metric} | " + " | ".join(cells[n] for n in IMPLS) + f" | {ratio} |")
    table = "\n".join(lines)

    print()
    print(f"## Results ({device}, {threads} threads; medians [min-max] of {rounds} rounds)")
    print()
    print(table)
    print()
    print("Ratios: speed-up = median over rounds of reference time / our time (>1 = ours faster);")
    print("memory: ours / reference (<1 = ours uses less).")
    print(f"Memory method: {MEMORY_METHOD[device.type]}.")
    print(
        f"FLOPs (convolutions and matmuls, 2 per multiply-add, torch.utils.flop_counter): "
        f"{flops['macs_per_image_forward'] / 1e6:.3f} M MACs per image forward; "
        f"{flops['flops_per_image_mcmc_step'] / 1e6:.3f} MFLOP per image per MCMC step "
        f"(forward + grad wrt the input); {it_flops / 1e9:.2f} GFLOP per training iteration "
        f"({MCMC_STEPS} x {BATCH} MCMC image-steps + {flops['flops_parameter_update'] / 1e9:.2f}"
        f" GFLOP for the parameter update); {gen_flops / 1e9:.2f} GFLOP per generation."
    )
    ceiling = matmul_ceiling(device)
    best_time = it_flops / (ceiling["bf16"] * 1e9)
    ref_time = statistics.median(train["reference"])
    print(
        f"Ceiling: a 2048 x 2048 matmul runs at {ceiling['fp32']:.0f} GFLOP/s (fp32) and "
        f"{ceiling['bf16']:.0f} GFLOP/s (bf16) here. Even at the bf16 rate, one training "
        f"iteration ({it_flops / 1e9:.1f} GFLOP) needs >= {best_time:.3f} s, so no "
        f"implementation can beat the reference ({ref_time:.3f} s) by more than "
        f"{ref_time / best_time:.1f}x on this device; small convolutions reach far less."
    )
    spread = {
        name: max(v) / min(v)
        for name, v in {**train, **{f"gen_{k}": v for k, v in gen.items()}}.items()
        if min(v) > 0
    }
    worst = max(spread.values())
    if worst > 1.5:
        print(
            f"NOTE: timings of one implementation varied up to {worst:.1f}x between rounds; the "
            "machine was busy (load average now "
            f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}). Ratios of interleaved rounds "
            "are more robust than the absolute times; rerun, or try --threads 1."
        )
    elapsed = time.perf_counter() - started
    print(f"(bench.py ran {elapsed:.0f} s)")

    result = {
        "machine": facts,
        "config": config,
        "flops": flops,
        "matmul_ceiling_gflops": ceiling,
        "memory_method": MEMORY_METHOD[device.type],
        "times_s": {
            "training_iteration": train,
            "generation": gen,
            "first_samples": first,
            "epoch": epoch,
        },
        "peak_memory_bytes": {"training_iteration": mem_train, "generation": mem_gen},
        "speedup": {
            "training_iteration": paired_speedup(train["reference"], train["ours"]),
            "training_iteration_fp32": paired_speedup(train["reference"], train["ours_fp32"]),
            "generation": paired_speedup(gen["reference"], gen["ours"]),
            "generation_fp32": paired_speedup(gen["reference"], gen["ours_fp32"]),
            "first_samples": paired_speedup(first["reference"], first["ours"]),
        },
        "table_markdown": table,
        "elapsed_s": elapsed,
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
