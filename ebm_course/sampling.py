"""Sampling from an energy model: Langevin dynamics and the replay buffer.

Sign convention: ``model(x)`` returns the score ``f(x) = -E(x)``. Sampling climbs
the score (descends the energy): ``x <- x + step_size * grad_x f(x)`` plus noise.
Nothing here plots or prints: this is the hot path of training.
"""

from __future__ import annotations

import functools
import math
import warnings
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

ValueRange = tuple[float, float] | None
PRECISIONS = ("auto", "fp32", "bf16")


@functools.cache
def _cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 dot-product instructions (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: stay with fp32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype the MCMC forward passes run in, or ``None`` for plain fp32.

    ``"auto"`` picks bf16 on CUDA GPUs that support it and on CPUs with native bf16
    (AVX512-BF16 or AMX), fp32 elsewhere; ``"fp32"`` and ``"bf16"`` force one.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if _cpu_has_native_bf16() else None
    return None


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_value_range(value_range: ValueRange) -> None:
    if value_range is None:
        return
    lo, hi = value_range
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(
            f"value_range must be (low, high) with finite low < high, got {value_range}"
        )


def uniform_noise(
    shape: Sequence[int],
    value_range: tuple[float, float] = (-1.0, 1.0),
    device: str | torch.device = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Uniform noise over ``value_range`` (the chains' usual starting point), of ``shape``."""
    lo, hi = value_range
    noise = torch.rand(tuple(shape), device=device, generator=generator)
    return noise.mul_(hi - lo).add_(lo)


def score_gradient(
    model: nn.Module, x: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``grad_x sum_i f(x_i)``: the gradient of the score with respect to the input only.

    ``x`` must require grad. With ``dtype`` (e.g. ``torch.bfloat16``) the forward
    pass runs under autocast; the gradient comes back in ``x``'s dtype.
    """
    with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        score = model(x)
    (grad,) = torch.autograd.grad(score.float().sum(), x)
    return grad


# torch.compile'd score_gradient per model (compiling costs seconds; reuse it)
_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _gradient_function(model: nn.Module, compile: bool) -> Callable:
    if not compile:
        return score_gradient
    if model not in _compiled:
        _compiled[model] = torch.compile(score_gradient, dynamic=False)
    return _compiled[model]


class _GraphedGradient:
    """``score_gradient`` replayed from a captured CUDA graph (one per model, shape, dtype).

    A tiny network's forward and backward are dozens of short kernels: on a GPU the CPU
    launching them is the bottleneck. Captured once, each step becomes one graph replay.
    The graph reads the parameters in place, so optimiser steps are seen; a model whose
    parameters were replaced (``load_state_dict`` keeps them, ``.to()`` may not) is
    recaptured.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, dtype: torch.dtype | None) -> None:
        self.static_x = x.detach().clone().requires_grad_(True)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph, as CUDA graphs require
            for _ in range(3):
                score_gradient(model, self.static_x, dtype)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_grad = score_gradient(model, self.static_x, dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.static_x.copy_(x)
        self.graph.replay()
        return self.static_grad.clone()


_graphs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _graphed_gradient(model: nn.Module, x: torch.Tensor, dtype: torch.dtype | None) -> Callable:
    key = (tuple(x.shape), x.stride(), dtype, tuple(p.data_ptr() for p in model.parameters()))
    per_model = _graphs.setdefault(model, {})
    if key not in per_model:
        per_model.clear()  # parameters moved or shape changed: old graphs are stale
        per_model[key] = _GraphedGradient(model, x, dtype)
    graphed = per_model[key]
    return lambda _model, x_now, _dtype: graphed(x_now)


def langevin(
    model: nn.Module,
    x: torch.Tensor,
    steps: int = 60,
    step_size: float = 10.0,
    noise_std: float = 0.005,
    grad_clamp: float | None = 0.03,
    value_range: ValueRange = (-1.0, 1.0),
    return_trajectory: bool = False,
    generator: torch.Generator | None = None,
    precision: str = "auto",
    channels_last: bool = True,
    compile: bool = False,
    cuda_graph: bool = False,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run ``steps`` steps of (the tutorial's) Langevin dynamics from ``x``.

    Each step, in the tutorial's order:

    1. ``x <- clamp(x + noise_std * N(0, I))``
    2. ``g <- clamp(grad_x f(x), -grad_clamp, grad_clamp)`` with ``f = model`` (the score)
    3. ``x <- clamp(x + step_size * g)`` (clamping to ``value_range``)

    The defaults are the tutorial's MNIST setting (step 10, noise 0.005, gradient
    clamp 0.03, pixels in [-1, 1]). Textbook (unadjusted) Langevin for a density
    ``exp(f)`` is ``step_size=eps, noise_std=sqrt(2 * eps), grad_clamp=None,
    value_range=None``.

    Only the gradient with respect to the input is computed (``torch.autograd.grad``):
    the parameters' ``.grad``, their ``requires_grad`` flags and the model's
    train/eval mode are as before afterwards (the model runs in eval mode during
    sampling). Works when the caller is under ``torch.no_grad()``. The input
    tensor is not modified.

    Speed switches (the samples stay fp32 in every case; see ``benchmarks/``):

    - ``precision``: ``"auto"`` (default) runs the network's forward pass in bf16
      autocast where the hardware has native bf16 (GPUs, CPUs with AVX512-BF16 or
      AMX), else fp32; ``"fp32"`` forces full precision (bit-for-bit the plain
      algorithm), ``"bf16"`` forces bf16. bf16 changes each gradient by about 1 %
      relative, far below the Langevin noise's effect on the chain.
    - ``channels_last``: lay 4-D image batches out channels-last (NHWC), which the
      oneDNN / cuDNN convolutions prefer. Same numbers, different memory order.
    - ``compile``: ``torch.compile`` the score gradient (off by default: compiling
      takes tens of seconds on a CPU and did not pay off there; it may on a GPU).
      Falls back to eager, with a warning, when compilation fails.
    - ``cuda_graph``: on CUDA, capture the score gradient once as a CUDA graph and replay
      it each step (removes the per-kernel launch cost that dominates tiny networks on a
      GPU). Ignored on other devices. Off by default; falls back to eager, with a
      warning, when capture fails.

    Args:
        model: maps ``[B, ...]`` to scores ``[B]``.
        x: starting points ``[B, ...]`` (e.g. uniform noise in [-1, 1] for images).
        steps: number of Langevin steps (>= 1).
        step_size: gradient step (> 0).
        noise_std: standard deviation of the Gaussian noise added each step (>= 0).
        grad_clamp: clamp of each gradient entry, or ``None`` for no clamp.
        value_range: ``(low, high)`` the samples are clamped to, or ``None``.
        return_trajectory: return every step's samples too.
        generator: optional ``torch.Generator`` (on ``x``'s device) for the noise.
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"`` (see above).
        channels_last: use NHWC layout for 4-D inputs.
        compile: ``torch.compile`` the gradient computation.
        cuda_graph: replay the gradient computation from a captured CUDA graph.
        mask: optional boolean tensor broadcastable to ``x``: only entries where it is
            True move (noise and gradient); the rest stay as given. For inpainting.

    Returns:
        The final samples ``[B, ...]`` (detached, fp32, contiguous), or with
        ``return_trajectory`` the samples after each step, ``[steps, B, ...]``.
    """
    _check_positive_int("steps", steps)
    if not step_size > 0 or not math.isfinite(step_size):
        raise ValueError(f"step_size must be a finite number > 0, got {step_size!r}")
    if not noise_std >= 0 or not math.isfinite(noise_std):
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
    if grad_clamp is not None and not grad_clamp > 0:
        raise ValueError(f"grad_clamp must be > 0 or None, got {grad_clamp!r}")
    _check_value_range(value_range)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x))}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch [B, ...], got shape {list(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or Inf values")
    if value_range is not None:
        low, high = x.min().item(), x.max().item()
        if low < value_range[0] or high > value_range[1]:
            raise ValueError(
                f"x has values in [{low:.4g}, {high:.4g}], outside value_range {value_range} "
                "(scale images to [-1, 1], or pass value_range=None for unbounded samples)"
            )
    if mask is not None:
        try:
            mask = torch.broadcast_to(mask.to(device=x.device, dtype=x.dtype), x.shape)
        except RuntimeError as err:
            raise ValueError(
                f"mask of shape {list(mask.shape)} does not broadcast to x {list(x.shape)}"
            ) from err
    dtype = autocast_dtype(precision, x.device)
    gradient = _gradient_function(model, compile)

    was_training = model.training
    model.eval()
    layout = torch.channels_last if channels_last and x.dim() == 4 else torch.contiguous_format
    x = x.detach().clone(memory_format=layout).requires_grad_(True)
    if cuda_graph and x.device.type == "cuda":
        try:
            gradient = _graphed_gradient(model, x, dtype)
        except Exception as err:  # capture can fail for models with host syncs etc.
            warnings.warn(
                f"CUDA graph capture failed ({type(err).__name__}: {err}); using eager mode",
                RuntimeWarning,
                stacklevel=2,
            )
            _graphs.pop(model, None)
    noise = torch.empty_like(x)  # reused each step: no per-step allocation
    trajectory = x.new_empty((steps, *x.shape)) if return_trajectory else None
    try:
        with torch.enable_grad():
            for k in range(steps):
                with torch.no_grad():
                    if noise_std > 0:
                        noise.normal_(0.0, noise_std, generator=generator)
                        if mask is not None:
                            noise.mul_(mask)
                        x.add_(noise)
                        if value_range is not None:
                            x.clamp_(*value_range)
                try:
                    grad = gradient(model, x, dtype)
                except Exception as err:
                    if gradient is score_gradient or not compile:
                        raise
                    warnings.warn(
                        f"torch.compile failed ({type(err).__name__}: {err}); "
                        "falling back to eager mode",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    _compiled.pop(model, None)
                    gradient = score_gradient
                    grad = gradient(model, x, dtype)
                with torch.no_grad():
                    if grad_clamp is not None:
                        # Bounded moves keep one bad gradient from throwing a sample far away.
                        grad.clamp_(-grad_clamp, grad_clamp)
                    if mask is not None:
                        grad.mul_(mask)
                    x.add_(grad, alpha=step_size)
                    if value_range is not None:
                        x.clamp_(*value_range)
                    if trajectory is not None:
                        trajectory[k].copy_(x)
    finally:
        model.train(was_training)
    if trajectory is not None:
        return trajectory
    return x.detach().contiguous()


class ReplayBuffer:
    """A fixed-size store of past MCMC samples to restart chains from (persistent CD).

    Starting each training batch's chains from recent samples instead of fresh
    noise means a few dozen Langevin steps suffice. To keep exploring, each drawn
    example is re-initialised from uniform noise with probability ``reinit_prob``
    (the count is ``Binomial(batch, reinit_prob)``, as in the tutorial).

    Storage is one preallocated tensor ``[capacity, *shape]`` on ``device``, used as
    a ring: once full, new samples replace the oldest ones. An empty buffer draws
    uniform noise only.

    Args:
        shape: shape of one example, e.g. ``(1, 28, 28)``.
        capacity: maximum number of stored examples (the tutorial uses 8192).
        reinit_prob: fraction of each batch drawn fresh from uniform noise.
        value_range: ``(low, high)`` of the uniform noise (and of valid samples).
        device: where the storage lives (use the model's device).
        generator: optional ``torch.Generator`` on ``device`` for reproducible draws.
    """

    def __init__(
        self,
        shape: Sequence[int] = (1, 28, 28),
        capacity: int = 8192,
        reinit_prob: float = 0.05,
        value_range: tuple[float, float] = (-1.0, 1.0),
        device: str | torch.device = "cpu",
        generator: torch.Generator | None = None,
    ) -> None:
        _check_positive_int("capacity", capacity)
        if not 0.0 <= reinit_prob <= 1.0:
            raise ValueError(f"reinit_prob must be in [0, 1], got {reinit_prob!r}")
        shape = tuple(int(s) for s in shape)
        if not shape or any(s < 1 for s in shape):
            raise ValueError(f"shape must be a non-empty sequence of positive ints, got {shape}")
        _check_value_range(value_range)
        self.shape = shape
        self.capacity = capacity
        self.reinit_prob = float(reinit_prob)
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.generator = generator
        self.examples = torch.empty((capacity, *shape), device=device)
        self._size = 0  # how many slots hold samples
        self._next = 0  # ring position of the next write

    @property
    def device(self) -> torch.device:
        return self.examples.device

    def __len__(self) -> int:
        return self._size

    def uniform(self, n: int) -> torch.Tensor:
        """``n`` examples of uniform noise over ``value_range``: ``[n, *shape]``."""
        return uniform_noise((n, *self.shape), self.value_range, self.device, self.generator)

    def draw(self, batch_size: int) -> torch.Tensor:
        """Starting points for a batch: fresh noise for about ``reinit_prob`` of them,
        stored samples (uniformly, with replacement) for the rest. ``[batch_size, *shape]``."""
        _check_positive_int("batch_size", batch_size)
        if self._size == 0:
            return self.uniform(batch_size)
        counts = torch.full((1,), float(batch_size), device=self.device)
        n_new = int(
            torch.binomial(counts, torch.full_like(counts, self.reinit_prob), self.generator)
        )
        index = torch.randint(
            self._size, (batch_size - n_new,), device=self.device, generator=self.generator
        )
        return torch.cat([self.uniform(n_new), self.examples[index]], dim=0)

    def push(self, samples: torch.Tensor) -> None:
        """Store ``samples`` ``[n, *shape]``, overwriting the oldest when full."""
        if tuple(samples.shape[1:]) != self.shape:
            raise ValueError(
                f"samples must have shape [n, {', '.join(map(str, self.shape))}], "
                f"got {list(samples.shape)}"
            )
        samples = samples.detach()[-self.capacity :]  # only the newest can survive
        n = samples.shape[0]
        positions = (torch.arange(n, device=self.device) + self._next) % self.capacity
        self.examples[positions] = samples.to(self.examples)
        self._next = (self._next + n) % self.capacity
        self._size = min(self._size + n, self.capacity)

    def sample(
        self, model: nn.Module, batch_size: int, steps: int = 60, step_size: float = 10.0, **kwargs
    ) -> torch.Tensor:
        """Draw starting points, run :func:`langevin` on them, store and return the samples.

        Extra keyword arguments go to :func:`langevin`; ``value_range`` is the buffer's.
        """
        start = self.draw(batch_size)
        samples = langevin(
            model,
            start,
            steps=steps,
            step_size=step_size,
            value_range=self.value_range,
            generator=self.generator,
            **kwargs,
        )
        self.push(samples)
        return samples

    def to(self, device: str | torch.device) -> ReplayBuffer:
        """Move the storage to ``device`` (in place); returns ``self``."""
        self.examples = self.examples.to(device)
        return self

    def state_dict(self) -> dict[str, torch.Tensor | int | float | tuple]:
        """Everything needed to restore the buffer (tensors and plain numbers only)."""
        return {
            "examples": self.examples[: self._size].clone(),
            "capacity": self.capacity,
            "next": self._next,
            "reinit_prob": self.reinit_prob,
            "shape": self.shape,
            "value_range": self.value_range,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a buffer saved by :meth:`state_dict` (same shape and capacity)."""
        if tuple(state["shape"]) != self.shape or int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"buffer state has shape {tuple(state['shape'])} and capacity "
                f"{state['capacity']}, this buffer {self.shape} and {self.capacity}"
            )
        examples = state["examples"]
        self._size = int(examples.shape[0])
        self._next = int(state["next"])
        self.examples[: self._size] = examples.to(self.examples)
        self.reinit_prob = float(state["reinit_prob"])
        self.value_range = (float(state["value_range"][0]), float(state["value_range"][1]))
