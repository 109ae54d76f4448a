"""Where a Langevin step's time goes: each convolution of the tutorial's CNN on its own.

    .venv/bin/python benchmarks/layers.py [--batch 128] [--rounds 15] [--threads N]

For every convolution of ``CNNEnergy`` at the shapes one MCMC step sees (batch 128 by
default), times the forward pass and the gradient with respect to the layer's *input* (the
only backward pass sampling needs: ``aten.convolution_backward`` with the weight and bias
gradients switched off), in fp32 NCHW (what the tutorial runs) and in bf16 channels-last
(``ebm_course``'s fast default on CPUs with native bf16), and prints milliseconds and the
GFLOP/s achieved next to a large matmul's rate measured in the same run. The whole step
(forward + input gradient of the network, as ``ebm_course.sampling.score_gradient``) is
timed too, so the table shows how much of it the convolutions take and which one is slow.

Timings are medians over interleaved rounds (see README.md: the machines drift).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ebm_course.models import CNNEnergy
from ebm_course.sampling import score_gradient

VARIANTS = {
    "fp32 NCHW": (None, torch.contiguous_format),
    "bf16 NHWC": (torch.bfloat16, torch.channels_last),
}


def seconds(fn: Callable[[], object], repeat: int = 20) -> float:
    """Mean wall time of ``fn`` over ``repeat`` calls (after one untimed call)."""
    fn()
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat


def conv_inputs(model: CNNEnergy, batch: int) -> list[tuple[nn.Conv2d, torch.Size]]:
    """Each convolution of ``model`` with the shape of the input it sees."""
    found: list[tuple[nn.Conv2d, torch.Size]] = []
    hooks = [
        layer.register_forward_hook(lambda m, args, out: found.append((m, args[0].shape)))
        for layer in model.modules()
        if isinstance(layer, nn.Conv2d)
    ]
    with torch.no_grad():
        model(torch.zeros(batch, 1, 28, 28))
    for hook in hooks:
        hook.remove()
    return found


def layer_timers(conv: nn.Conv2d, shape: torch.Size, dtype, layout) -> dict[str, Callable]:
    x = torch.randn(shape, dtype=dtype or torch.float32).contiguous(memory_format=layout)
    w = conv.weight.detach().to(x.dtype).contiguous(memory_format=layout)
    stride, padding = list(conv.stride), list(conv.padding)
    out = F.conv2d(x, w, None, stride, padding)
    grad_out = torch.randn_like(out)
    mask = [True, False, False]  # input gradient only, as in sampling
    return {
        "forward": lambda: F.conv2d(x, w, None, stride, padding),
        "input gradient": lambda: torch.ops.aten.convolution_backward(
            grad_out, x, w, None, stride, padding, [1, 1], False, [0, 0], 1, mask
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = CNNEnergy().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    convs = conv_inputs(model, args.batch)

    timers: dict[tuple[str, str, str], Callable] = {}
    flops: dict[str, float] = {}
    for i, (conv, shape) in enumerate(convs, start=1):
        k, step = conv.kernel_size[0], conv.stride[0]
        name = f"conv{i} {conv.in_channels}->{conv.out_channels}, {k}x{k}/{step}, {shape[-1]}px"
        out_pixels = F.conv2d(
            torch.zeros(1, *shape[1:]), conv.weight, None, conv.stride, conv.padding
        )[0, 0].numel()
        flops[name] = 2.0 * args.batch * out_pixels * conv.weight.numel()
        for variant, (dtype, layout) in VARIANTS.items():
            for part, fn in layer_timers(conv, shape, dtype, layout).items():
                timers[(name, variant, part)] = fn
    for variant, (dtype, layout) in VARIANTS.items():
        x = torch.rand(args.batch, 1, 28, 28).contiguous(memory_format=layout).requires_grad_(True)
        timers[("whole step", variant, "")] = lambda x=x, dtype=dtype: score_gradient(
            model, x, dtype
        )
    big = {dt: torch.randn(1024, 1024, dtype=dt) for dt in (torch.float32, torch.bfloat16)}
    timers[("matmul 1024^2", "fp32 NCHW", "")] = lambda: big[torch.float32] @ big[torch.float32]
    timers[("matmul 1024^2", "bf16 NHWC", "")] = lambda: big[torch.bfloat16] @ big[torch.bfloat16]

    times: dict[tuple[str, str, str], list[float]] = {key: [] for key in timers}
    keys = list(timers)
    for round_ in range(args.rounds + 1):
        for key in keys if round_ % 2 else reversed(keys):
            t = seconds(timers[key])
            if round_:  # round 0 is warm-up
                times[key].append(t)
    ms = {key: 1e3 * statistics.median(value) for key, value in times.items()}

    print(
        f"# one MCMC step of the tutorial's CNN, batch {args.batch}, "
        f"{torch.get_num_threads()} threads; medians of {args.rounds} interleaved rounds"
    )
    matmul_rate = {v: 2 * 1024**3 / ms[("matmul 1024^2", v, "")] / 1e6 for v in VARIANTS}
    print(
        "| layer | MFLOP | " + " | ".join(f"{v} forward | {v} input grad" for v in VARIANTS) + " |"
    )
    print("|---|---|" + "---|---|" * len(VARIANTS))
    conv_total = dict.fromkeys(VARIANTS, 0.0)
    for name, flop in flops.items():
        cells = []
        for v in VARIANTS:
            for part in ("forward", "input gradient"):
                t = ms[(name, v, part)]
                conv_total[v] += t
                cells.append(f"{t:.3f} ms ({flop / t / 1e6:.0f} GFLOP/s)")
        print(f"| {name} | {flop / 1e6:.1f} | " + " | ".join(cells) + " |")
    for v in VARIANTS:
        step = ms[("whole step", v, "")]
        print(
            f"- {v}: all convolutions {conv_total[v]:.2f} ms of a whole step's {step:.2f} ms "
            f"({conv_total[v] / step:.0%}); a 1024^2 matmul runs at {matmul_rate[v]:.0f} GFLOP/s"
        )


if __name__ == "__main__":
    main()
