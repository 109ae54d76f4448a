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

``--quick`` is a smoke test, not a measurement of the tutorial's setting: 1 warm-up and 2
timed rounds (instead of 2 and 9), 1 first-samples round (instead of 3), and smaller sizes
(``QUICK`` below): batch 16 instead of 128, generation of 16 images x 64 steps instead of
64 x 256, first samples of 16 images x 64 steps instead of 256, a 512 x 512 matmul for the
ceiling instead of 2048 x 2048. The 60 MCMC steps of a training iteration stay (the
reference's ``training_step`` fixes them).

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
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

import ebm_course
from ebm_course import (
    CNNEnergy,
    ReplayBuffer,
    SamplerSpeed,
    TrainConfig,
    langevin,
    load_mnist,
    to_tensors,
    uniform_noise,
)
from ebm_course.speed import autocast_dtype
from ebm_course.training import training_step

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

MCMC_STEPS = 60  # Langevin steps per training iteration (the tutorial's; the reference fixes it)
EPOCH_ITERS = 468  # 60,000 // 128: one tutorial epoch (drop_last)
SHAPE = (1, 28, 28)
IMPLS = ("reference", "ours", "ours_fp32")
COLUMNS = {"reference": "reference", "ours": "ours (fast default)", "ours_fp32": "ours (fp32)"}
# the "ours (fp32)" column: every speed switch off, the same arithmetic as the reference
FP32 = SamplerSpeed(precision="fp32", channels_last=False, compile=False, cuda_graph=False)


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does; the defaults are the tutorial's setting."""

    batch: int = 128  # the tutorial's batch size
    gen_images: int = 64  # generation from uniform noise (the tutorial's GenerateCallback)
    gen_steps: int = 256
    first_images: int = 16  # "first samples" in a fresh process
    first_steps: int = 256
    matmul: int = 2048  # side of the square matmul that measures the ceiling


FULL = Sizes()
QUICK = Sizes(batch=16, gen_images=16, gen_steps=64, first_steps=64, matmul=512)


def load_reference() -> ModuleType:
    """``reference_tutorial.py`` beside this file, imported without touching ``sys.path``."""
    spec = importlib.util.spec_from_file_location(
        "reference_tutorial", HERE / "reference_tutorial.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = load_reference()


# ----------------------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall time of one call of ``fn``, with the device's queued work inside the interval."""
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


# ----------------------------------------------------------------------------- memory


def cpu_peak_bytes(fn: Callable[[], Any]) -> int:
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
    return cpu_peak_bytes(fn)


MEMORY_METHOD = {
    "cuda": "torch.cuda.max_memory_allocated() minus memory_allocated() before the call "
    "(peak stats reset before each call); GPU memory only",
    "cpu": "torch.profiler (profile_memory=True) memory events of one call: peak of the running "
    "sum of bytes allocated (+) and freed (-) inside the call; CPU tensor memory only",
}


# ----------------------------------------------------------------------------- FLOPs, machine


def count_flops(sizes: Sizes) -> dict[str, float]:
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
    batch = torch.zeros(2 * sizes.batch, *SHAPE)
    with FlopCounterMode(display=False) as counter:
        score = model(batch)
        (0.1 * score.pow(2).mean() + score.mean()).backward()
    update = counter.get_total_flops()  # forward + full backward on real + fake
    return {
        "macs_per_image_forward": forward / 2,
        "flops_per_image_mcmc_step": mcmc_step,
        "flops_parameter_update": update,
        "flops_per_training_iteration": MCMC_STEPS * sizes.batch * mcmc_step + update,
        "flops_per_generation": sizes.gen_steps * sizes.gen_images * mcmc_step,
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
    """Versions, processor, threads and what ``precision="auto"`` picks on ``device``."""
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


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the reference draws from NumPy's global RNG)
    random.seed(seed)


class Contenders:
    """Three identical CNNs (same initial weights), each with its optimiser and replay buffer."""

    def __init__(
        self, images: torch.Tensor, device: torch.device, sizes: Sizes = FULL, seed: int = 0
    ) -> None:
        seed_everything(seed)
        self.device = device
        self.sizes = sizes
        self.images = images.to(device)
        self.index_gen = torch.Generator().manual_seed(seed)

        self.ref_model = ref.CNNModel().to(device)
        weights = self.ref_model.state_dict()
        self.ref_optimizer = ref.configure_optimizer(self.ref_model)
        self.ref_sampler = ref.Sampler(self.ref_model, SHAPE, sizes.batch, device=device)

        # ours with TrainConfig's defaults, and with every speed switch off
        self.configs = {"ours": TrainConfig(), "ours_fp32": TrainConfig(**dataclasses.asdict(FP32))}
        self.models: dict[str, torch.nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.buffers: dict[str, ReplayBuffer] = {}
        self.generators: dict[str, torch.Generator] = {}
        for i, name in enumerate(self.configs):
            self.add_ours(name, weights, seed + 1 + i)
        # a separate copy for the network-only floor, so that it does not train
        self.floor_model = CNNEnergy().to(device)
        self.floor_model.load_state_dict(weights)
        self.floor_model.eval()

    def add_ours(self, name: str, weights: dict[str, torch.Tensor], seed: int) -> None:
        """Our CNN for column ``name``, starting from ``weights``, with its Adam and buffer."""
        cfg = self.configs[name]
        model = CNNEnergy().to(self.device)
        model.load_state_dict(weights)  # same keys: cnn_layers.*
        self.models[name] = model
        self.optimizers[name] = torch.optim.Adam(
            model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)
        )
        self.generators[name] = torch.Generator(device=self.device).manual_seed(seed)
        self.buffers[name] = ReplayBuffer(
            SHAPE, cfg.buffer_capacity, cfg.reinit_prob, cfg.value_range, device=self.device
        )

    # one training iteration of each ------------------------------------------------------
    def batch(self) -> torch.Tensor:
        index = torch.randint(len(self.images), (self.sizes.batch,), generator=self.index_gen)
        return self.images[index.to(self.device)]  # a fresh tensor (the reference edits it)

    def train_ref(self, real: torch.Tensor | None = None) -> dict[str, float]:
        real = self.batch() if real is None else real
        return ref.training_step(self.ref_model, self.ref_sampler, self.ref_optimizer, real)

    def train_ours(self, name: str, real: torch.Tensor | None = None) -> dict[str, float]:
        real = self.batch() if real is None else real
        model, optimizer, buffer = self.models[name], self.optimizers[name], self.buffers[name]
        return training_step(
            model, optimizer, buffer, real, self.configs[name], self.generators[name]
        )

    def train(self, name: str, real: torch.Tensor | None = None) -> dict[str, float]:
        return self.train_ref(real) if name == "reference" else self.train_ours(name, real)

    # generation from noise ---------------------------------------------------------------
    def noise(self, n: int) -> torch.Tensor:
        return uniform_noise((n, *SHAPE), device=self.device)

    def generate(self, name: str) -> torch.Tensor:
        x = self.noise(self.sizes.gen_images)
        steps = self.sizes.gen_steps
        if name == "reference":
            return ref.Sampler.generate_samples(self.ref_model, x, steps=steps, step_size=10)
        speed = None if name == "ours" else FP32  # None: langevin's own (fast) defaults
        return langevin(self.models[name], x, steps=steps, speed=speed)

    # the network alone: MCMC_STEPS x (forward + grad wrt the input), one batch -----------
    def floor(self, fast: bool) -> None:
        cfg = self.configs["ours"]
        # the fast default's precision and layout, without compile or CUDA graphs
        speed = SamplerSpeed(cfg.precision, cfg.channels_last) if fast else FP32
        x = speed.layout(self.noise(self.sizes.batch))
        gradient = speed.gradient(self.floor_model, x)
        for _ in range(MCMC_STEPS):
            gradient(x)


# ----------------------------------------------------------------------------- measurements


@dataclass
class Plan:
    """What one run measures, from the command line."""

    device: torch.device
    threads: int
    warmup: int  # untimed rounds first
    rounds: int  # timed rounds
    first_rounds: int  # rounds of the first-samples subprocesses
    sizes: Sizes
    epoch_iters: int | None  # None: no epoch timing
    json_path: Path | None


@dataclass
class Measurements:
    """Raw results: seconds per round (times) or bytes (memory), per implementation."""

    train: dict[str, list[float]]  # the IMPLS, plus floor_fp32 and floor_fast
    gen: dict[str, list[float]]
    mem_train: dict[str, int]
    mem_gen: dict[str, int]
    first: dict[str, list[float]]
    epoch: dict[str, float] | None  # summed seconds of one epoch, with --epoch


def time_training(c: Contenders, plan: Plan) -> dict[str, list[float]]:
    """Training iterations and the network-only floors, interleaved."""
    tasks = {
        "reference": c.train_ref,
        "ours": lambda: c.train_ours("ours"),
        "ours_fp32": lambda: c.train_ours("ours_fp32"),
        "floor_fp32": lambda: c.floor(fast=False),
        "floor_fast": lambda: c.floor(fast=True),
    }
    return interleaved(tasks, plan.warmup, plan.rounds, plan.device)


def time_generation(c: Contenders, plan: Plan) -> dict[str, list[float]]:
    """Generation from noise, interleaved."""
    tasks = {name: (lambda name=name: c.generate(name)) for name in IMPLS}
    return interleaved(tasks, plan.warmup, plan.rounds, plan.device)


def first_samples_script(name: str, weights: str, threads: int, sizes: Sizes = FULL) -> str:
    """The code a fresh ``python -c`` runs: import, build, load weights, generate on CPU."""
    n, steps = sizes.first_images, sizes.first_steps
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
            f"imgs = torch.rand(({n}, 1, 28, 28)) * 2 - 1\n"
            f"out = ref.Sampler.generate_samples(model, imgs, steps={steps}, step_size=10)\n"
            f"assert out.shape == ({n}, 1, 28, 28)\n"
        )
    fp32 = f"ebm_course.SamplerSpeed(**{dataclasses.asdict(FP32)!r})"
    extra = f", speed={fp32}" if name == "ours_fp32" else ""
    return (
        "import ebm_course\n"
        "import torch\n"
        f"torch.set_num_threads({threads})\n"
        "model = ebm_course.CNNEnergy()\n"
        f"{load}"
        f"x = torch.rand({n}, 1, 28, 28) * 2 - 1\n"
        f"out = ebm_course.langevin(model, x, steps={steps}{extra})\n"
        f"assert out.shape == ({n}, 1, 28, 28)\n"
    )


def first_samples(rounds: int, threads: int, sizes: Sizes = FULL) -> dict[str, list[float]]:
    """Wall time of each implementation's fresh process, interleaved over ``rounds``."""
    times: dict[str, list[float]] = {name: [] for name in IMPLS}
    with tempfile.TemporaryDirectory() as tmp:
        weights = str(Path(tmp) / "cnn.pt")
        torch.save(CNNEnergy().state_dict(), weights)
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        for r in range(rounds):
            for name in IMPLS if r % 2 == 0 else IMPLS[::-1]:
                code = first_samples_script(name, weights, threads, sizes)
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
    n, batch = len(c.images), c.sizes.batch
    gen = torch.Generator().manual_seed(123)
    need = iters * batch
    order = torch.cat([torch.randperm(n, generator=gen) for _ in range(-(-need // n))])[:need]
    order = order.view(iters, batch).to(c.device)
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


def measure(c: Contenders, plan: Plan) -> Measurements:
    """Every measurement of the table, in order; memory after the timing (buffers filled)."""
    print("# timing training iterations ...", flush=True)
    train = time_training(c, plan)
    print("# timing generation ...", flush=True)
    gen = time_generation(c, plan)
    print("# measuring peak memory ...", flush=True)
    mem_train = {name: peak_memory(lambda name=name: c.train(name), plan.device) for name in IMPLS}
    mem_gen = {name: peak_memory(lambda name=name: c.generate(name), plan.device) for name in IMPLS}
    print("# timing first samples (subprocesses) ...", flush=True)
    first = first_samples(plan.first_rounds, plan.threads, plan.sizes)
    epoch = None
    if plan.epoch_iters is not None:  # the GPU script only
        print(f"# timing one epoch ({plan.epoch_iters} iterations) of each ...", flush=True)
        epoch = epoch_times(c, plan.epoch_iters)
    return Measurements(train, gen, mem_train, mem_gen, first, epoch)


# ----------------------------------------------------------------------------- the table

Row = tuple[str, dict[str, str], str]  # metric, one cell per implementation, ratio


def fmt_spread(values: list[float], unit: str, digits: int = 3) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f} {unit}"
    return f"{med:.{digits}f} {unit} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def speedup_cell(times: dict[str, list[float]]) -> str:
    """The ratio column of a timed row: the fast default's speed-up, and fp32's in brackets."""
    fast = paired_speedup(times["reference"], times["ours"])
    plain = paired_speedup(times["reference"], times["ours_fp32"])
    return f"{fast:.2f}x (fp32: {plain:.2f}x)"


def training_rows(train: dict[str, list[float]], flops: dict[str, float], batch: int) -> list[Row]:
    """Iteration time, its GFLOP/s, the network-only floor and floor / iteration."""
    it_flops = flops["flops_per_training_iteration"]
    # the reference and the fp32 column share the fp32 floor
    floor = {"reference": "floor_fp32", "ours": "floor_fast", "ours_fp32": "floor_fp32"}
    floor_speedup = paired_speedup(train["floor_fp32"], train["floor_fast"])
    return [
        (
            f"training iteration, s (batch {batch}, {MCMC_STEPS} MCMC steps)",
            {n: fmt_spread(train[n], "s") for n in IMPLS},
            speedup_cell(train),
        ),
        (
            "training throughput, GFLOP/s achieved",
            {n: f"{it_flops / statistics.median(train[n]) / 1e9:.1f}" for n in IMPLS},
            "",
        ),
        (
            f"floor: network only, {MCMC_STEPS} x (forward + grad_x), batch {batch}, s",
            {n: fmt_spread(train[floor[n]], "s") for n in IMPLS},
            f"{floor_speedup:.2f}x (fast vs fp32)",
        ),
        (
            "floor / iteration (median of per-round ratios)",
            {n: f"{paired_speedup(train[floor[n]], train[n]):.0%}" for n in IMPLS},
            "",
        ),
    ]


def generation_rows(
    gen: dict[str, list[float]], flops: dict[str, float], sizes: Sizes
) -> list[Row]:
    """Generation rate in image-steps/s and in GFLOP/s."""
    img_steps = sizes.gen_images * sizes.gen_steps
    gen_flops = flops["flops_per_generation"]
    return [
        (
            f"generation, image-steps/s ({sizes.gen_images} x {sizes.gen_steps} steps from noise)",
            {n: f"{img_steps / statistics.median(gen[n]):,.0f}" for n in IMPLS},
            speedup_cell(gen),
        ),
        (
            "generation, GFLOP/s achieved",
            {n: f"{gen_flops / statistics.median(gen[n]) / 1e9:.1f}" for n in IMPLS},
            "",
        ),
    ]


def memory_row(label: str, mem: dict[str, int]) -> Row:
    """Peak extra memory in MiB; the ratio is ours / reference (< 1: ours uses less)."""
    mib = 2.0**20
    return (
        f"peak extra memory, {label}, MiB",
        {n: f"{mem[n] / mib:.1f}" for n in IMPLS},
        f"{mem['ours'] / mem['reference']:.2f} (fp32: "
        f"{mem['ours_fp32'] / mem['reference']:.2f}) ours/ref",
    )


def epoch_row(epoch: dict[str, float], iters: int, batch: int) -> Row:
    """Summed epoch time; the ratio is of the sums (one epoch, no rounds)."""
    return (
        f"one epoch, s ({iters} iterations of batch {batch})",
        {n: f"{epoch[n]:.1f} s" for n in IMPLS},
        f"{epoch['reference'] / epoch['ours']:.2f}x (fp32: "
        f"{epoch['reference'] / epoch['ours_fp32']:.2f}x)",
    )


def table_rows(m: Measurements, flops: dict[str, float], plan: Plan) -> list[Row]:
    """Every row of the results table, in print order."""
    sizes = plan.sizes
    first_label = (
        f"first samples, s (fresh process, {sizes.first_images} x {sizes.first_steps} steps, CPU)"
    )
    rows = [
        *training_rows(m.train, flops, sizes.batch),
        *generation_rows(m.gen, flops, sizes),
        memory_row("training iteration", m.mem_train),
        memory_row("generation", m.mem_gen),
        (first_label, {n: fmt_spread(m.first[n], "s", 2) for n in IMPLS}, speedup_cell(m.first)),
    ]
    if m.epoch is not None:
        rows.append(epoch_row(m.epoch, plan.epoch_iters, sizes.batch))
    return rows


def render_table(rows: list[Row]) -> str:
    """The rows as a Markdown table, one column per implementation."""
    header = "| metric | " + " | ".join(COLUMNS[n] for n in IMPLS) + " | ratio ours/reference |"
    lines = [header, "|---|---|---|---|---|"]
    for metric, cells, ratio in rows:
        lines.append(f"| {metric} | " + " | ".join(cells[n] for n in IMPLS) + f" | {ratio} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the report


def flops_sentence(flops: dict[str, float], batch: int) -> str:
    it_flops = flops["flops_per_training_iteration"]
    return (
        f"FLOPs (convolutions and matmuls, 2 per multiply-add, torch.utils.flop_counter): "
        f"{flops['macs_per_image_forward'] / 1e6:.3f} M MACs per image forward; "
        f"{flops['flops_per_image_mcmc_step'] / 1e6:.3f} MFLOP per image per MCMC step "
        f"(forward + grad wrt the input); {it_flops / 1e9:.2f} GFLOP per training iteration "
        f"({MCMC_STEPS} x {batch} MCMC image-steps + {flops['flops_parameter_update'] / 1e9:.2f}"
        f" GFLOP for the parameter update); {flops['flops_per_generation'] / 1e9:.2f} GFLOP per "
        "generation."
    )


def print_results(plan: Plan, table: str, flops: dict[str, float]) -> None:
    """The table and, below it, how to read its ratios, its memory and its FLOPs."""
    print()
    print(
        f"## Results ({plan.device}, {plan.threads} threads; medians [min-max] of "
        f"{plan.rounds} rounds)"
    )
    print()
    print(table)
    print()
    print("Ratios: speed-up = median over rounds of reference time / our time (>1 = ours faster);")
    print("memory: ours / reference (<1 = ours uses less).")
    print(f"Memory method: {MEMORY_METHOD[plan.device.type]}.")
    print(flops_sentence(flops, plan.sizes.batch))


def ceiling_sentence(
    ceiling: dict[str, float], size: int, flops: dict[str, float], ref_time: float
) -> str:
    """How fast any implementation could be, at best, at this device's matmul rate."""
    it_flops = flops["flops_per_training_iteration"]
    best_time = it_flops / (ceiling["bf16"] * 1e9)
    return (
        f"Ceiling: a {size} x {size} matmul runs at {ceiling['fp32']:.0f} GFLOP/s (fp32) and "
        f"{ceiling['bf16']:.0f} GFLOP/s (bf16) here. Even at the bf16 rate, one training "
        f"iteration ({it_flops / 1e9:.1f} GFLOP) needs >= {best_time:.3f} s, so no "
        f"implementation can beat the reference ({ref_time:.3f} s) by more than "
        f"{ref_time / best_time:.1f}x on this device; small convolutions reach far less."
    )


def drift_note(m: Measurements) -> str | None:
    """A warning when one implementation's round times vary by more than 1.5x, else None."""
    timed_tasks = {**m.train, **{f"gen_{k}": v for k, v in m.gen.items()}}
    spread = {name: max(v) / min(v) for name, v in timed_tasks.items() if min(v) > 0}
    worst = max(spread.values())
    if worst <= 1.5:
        return None
    return (
        f"NOTE: timings of one implementation varied up to {worst:.1f}x between rounds; the "
        "machine was busy (load average now "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}). Ratios of interleaved rounds "
        "are more robust than the absolute times; rerun, or try --threads 1."
    )


# ----------------------------------------------------------------------------- the run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    if args.device and torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch.cuda.is_available() is False")
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    """The run's settings; sets torch's thread count when ``--threads`` asks for one."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return Plan(
        device=torch.device(args.device) if args.device else ebm_course.device(),
        threads=torch.get_num_threads(),
        warmup=1 if args.quick else 2,
        rounds=args.rounds or (2 if args.quick else 9),
        first_rounds=1 if args.quick else 3,
        sizes=QUICK if args.quick else FULL,
        epoch_iters=args.epoch_iters if args.epoch else None,
        json_path=args.json,
    )


def run_config(plan: Plan, c: Contenders) -> dict[str, Any]:
    """The settings recorded in the JSON file."""
    sizes = plan.sizes
    return {
        "batch": sizes.batch,
        "mcmc_steps": MCMC_STEPS,
        "generation": f"{sizes.gen_images} images x {sizes.gen_steps} steps",
        "first_samples": f"{sizes.first_images} images x {sizes.first_steps} steps, CPU, "
        "fresh process",
        "warmup_rounds": plan.warmup,
        "timed_rounds": plan.rounds,
        "ours_config": dataclasses.asdict(c.configs["ours"]),
        "ours_fp32_config": dataclasses.asdict(c.configs["ours_fp32"]),
    }


def measurements_json(m: Measurements) -> dict[str, Any]:
    """The raw times and memory peaks, and the headline speed-ups."""
    speedup = {
        "training_iteration": paired_speedup(m.train["reference"], m.train["ours"]),
        "training_iteration_fp32": paired_speedup(m.train["reference"], m.train["ours_fp32"]),
        "generation": paired_speedup(m.gen["reference"], m.gen["ours"]),
        "generation_fp32": paired_speedup(m.gen["reference"], m.gen["ours_fp32"]),
        "first_samples": paired_speedup(m.first["reference"], m.first["ours"]),
    }
    return {
        "times_s": {
            "training_iteration": m.train,
            "generation": m.gen,
            "first_samples": m.first,
            "epoch": m.epoch,
        },
        "peak_memory_bytes": {"training_iteration": m.mem_train, "generation": m.mem_gen},
        "speedup": speedup,
    }


def print_machine(facts: dict[str, Any], plan: Plan) -> None:
    print("## Machine")
    for key, value in facts.items():
        print(f"- {key}: {value}")
    print(f"- warm-up rounds: {plan.warmup}, timed rounds: {plan.rounds} (interleaved)", flush=True)


def run(plan: Plan) -> dict[str, Any]:
    """Measure, print the report, and return everything for the JSON file."""
    started = time.perf_counter()
    images, source = load_images()
    facts = {**machine_facts(plan.device), "data": source}
    print_machine(facts, plan)
    flops = count_flops(plan.sizes)
    c = Contenders(images, plan.device, plan.sizes)
    m = measure(c, plan)
    table = render_table(table_rows(m, flops, plan))
    print_results(plan, table, flops)
    ceiling = matmul_ceiling(plan.device, plan.sizes.matmul)
    ref_time = statistics.median(m.train["reference"])
    print(ceiling_sentence(ceiling, plan.sizes.matmul, flops, ref_time))
    note = drift_note(m)
    if note is not None:
        print(note)
    elapsed = time.perf_counter() - started
    print(f"(bench.py ran {elapsed:.0f} s)")
    return {
        "machine": facts,
        "config": run_config(plan, c),
        "flops": flops,
        "matmul_ceiling_gflops": ceiling,
        "memory_method": MEMORY_METHOD[plan.device.type],
        **measurements_json(m),
        "table_markdown": table,
        "elapsed_s": elapsed,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    plan = make_plan(parse_args(argv))
    result = run(plan)
    if plan.json_path is not None:
        plan.json_path.parent.mkdir(parents=True, exist_ok=True)
        plan.json_path.write_text(json.dumps(result, indent=2, default=str))
        print(f"wrote {plan.json_path}")
    return result


if __name__ == "__main__":
    main()
